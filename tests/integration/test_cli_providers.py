"""The CLI and wallet providers: settings checked at start-up with the variable named, shown
with secrets masked, and the GSMA Mobile Money sandbox command."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from gateway.cli import main


@pytest.fixture
def cli_env(settings: Any, container: Any) -> dict[str, str]:
    return {
        "GATEWAY_DATABASE_URL": settings.resolved_database_url,
        "GATEWAY_DATA_DIR": str(settings.data_dir),
        "GATEWAY_ENVIRONMENT": "test",
    }


def run(env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(main, list(args), env=env)


def test_config_check_lists_provider_settings_with_secrets_masked(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "GATEWAY_GSMA_MM_AUTH": "api_key", "GATEWAY_GSMA_MM_API_KEY": "s3cr3t-key"}
    result = run(env, "config", "check")

    assert result.exit_code == 0, result.output
    assert "GATEWAY_GSMA_MM_AUTH=api_key" in result.output
    assert "GATEWAY_GSMA_MM_API_KEY=********" in result.output
    assert "s3cr3t-key" not in result.output
    assert "GATEWAY_GSMA_MM_CLEARING_ACCOUNT={}" in result.output


@pytest.mark.parametrize("args", [("config", "check"), ("partners", "list")])
def test_bad_provider_settings_stop_commands_with_the_variable_named(
    cli_env: dict[str, str], args: tuple[str, ...]
) -> None:
    result = run({**cli_env, "GATEWAY_GSMA_MM_AUTH": "api_key"}, *args)

    assert result.exit_code == 1
    assert "GATEWAY_GSMA_MM_API_KEY" in result.output
    assert "Traceback" not in result.output


def test_an_unknown_provider_is_refused(cli_env: dict[str, str]) -> None:
    result = run({**cli_env, "GATEWAY_PROVIDERS": "gsma_mm,mpesa"}, "config", "check")
    assert result.exit_code == 1
    assert "unknown provider 'mpesa'" in result.output


def test_the_sandbox_command_documents_itself() -> None:
    result = CliRunner().invoke(main, ["simulator", "gsma-mm", "--help"])
    assert result.exit_code == 0
    assert "GATEWAY_GSMA_MM_CALLBACK_API_KEY" in result.output
