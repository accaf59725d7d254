"""The `wallet-gateway` command: partners life cycle, migrations, refusing an un-migrated DB."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from gateway.cli import main


@pytest.fixture
def cli_env(settings, container) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {
        "GATEWAY_DATABASE_URL": settings.resolved_database_url,
        "GATEWAY_DATA_DIR": str(settings.data_dir),
        "GATEWAY_ENVIRONMENT": "test",
    }


def _run(env: dict[str, str], *args: str) -> str:
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_partner_life_cycle(cli_env, client) -> None:  # type: ignore[no-untyped-def]
    created = json.loads(
        _run(
            cli_env,
            "partners",
            "create",
            "--name",
            "CLI Wallet",
            "--kind",
            "wallet",
            "--scope",
            "partner:read",
            "--format",
            "json",
        )
    )
    client_id, secret = created["client_id"], created["client_secret"]
    assert created["scopes"] == ["partner:read"]

    def token_status(secret_: str) -> int:
        return client.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret_)
        ).status_code  # type: ignore[no-any-return]

    assert token_status(secret) == 200
    listed = json.loads(_run(cli_env, "partners", "list", "--json"))
    assert any(p["id"] == client_id for p in listed)
    assert secret not in json.dumps(listed)

    env_lines = _run(
        cli_env, "partners", "rotate-secret", client_id, "--format", "env"
    ).splitlines()
    new_secret = env_lines[1].removeprefix("CLIENT_SECRET=")
    assert token_status(secret) == 401 and token_status(new_secret) == 200

    assert "is suspended" in _run(cli_env, "partners", "suspend", client_id, "--reason", "test")
    assert token_status(new_secret) == 401
    assert "is active" in _run(cli_env, "partners", "resume", client_id)
    assert token_status(new_secret) == 200


def test_scopes_outside_the_kind_are_refused(cli_env) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(
        main,
        ["partners", "create", "--name", "x", "--kind", "wallet", "--scope", "admin:write"],
        env=cli_env,
    )
    assert result.exit_code == 2
    assert "cannot hold: admin:write" in result.output


def test_invalid_settings_fail_with_the_variable_named(cli_env) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(main, ["partners", "list"], env={**cli_env, "GATEWAY_PORT": "nope"})
    assert result.exit_code == 1
    assert "GATEWAY_PORT" in result.output


def test_serve_refuses_an_unmigrated_database(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {
        "GATEWAY_DATABASE_URL": f"sqlite:///{tmp_path}/empty.db",
        "GATEWAY_DATA_DIR": str(tmp_path),
    }
    result = CliRunner().invoke(main, ["serve"], env=env)
    assert result.exit_code == 1
    assert "run `wallet-gateway migrate` first" in result.output
    migrated = CliRunner().invoke(main, ["migrate"], env=env)
    assert migrated.exit_code == 0 and "database at revision" in migrated.output


def test_config_check_masks_secrets(cli_env) -> None:  # type: ignore[no-untyped-def]
    output = _run({**cli_env, "GATEWAY_METRICS_TOKEN": "very-secret-value"}, "config", "check")
    assert "GATEWAY_METRICS_TOKEN=********" in output
    assert "very-secret-value" not in output


def test_fees_and_limits_are_set_from_the_cli(cli_env, container) -> None:  # type: ignore[no-untyped-def]
    from gateway.store.tables import FeeScheduleRow, PartnerLimit

    view, _secret = container.partners.create(name="fees", kind="wallet", actor="test")
    _run(
        cli_env,
        "partners",
        "set-fee",
        view["id"],
        "--direction",
        "debit",
        "--currency",
        "CNY",
        "--fixed",
        "1.00",
        "--percent",
        "0.35",
        "--minimum",
        "1.50",
        "--maximum",
        "50.00",
    )
    _run(
        cli_env,
        "partners",
        "set-limit",
        view["id"],
        "--currency",
        "CNY",
        "--per-transaction",
        "50000.00",
        "--daily",
        "1000000.00",
    )
    with container.db.read() as session:
        fee = session.get(FeeScheduleRow, (view["id"], "debit", "CNY"))
        assert (fee.fixed, fee.rate_ppm, fee.minimum, fee.maximum) == (100, 3500, 150, 5000)
        limit = session.get(PartnerLimit, (view["id"], "CNY"))
        assert (limit.per_transaction, limit.daily) == (5_000_000, 100_000_000)
    bad = CliRunner().invoke(
        main,
        [
            "partners",
            "set-fee",
            view["id"],
            "--direction",
            "debit",
            "--currency",
            "CNY",
            "--fixed",
            "0.001",
        ],
        env=cli_env,
    )
    assert bad.exit_code == 2
    assert "precision" in bad.output


def test_sandbox_sms_prints_the_newest_code(cli_env, container) -> None:  # type: ignore[no-untyped-def]
    container.notifier.send_sms(
        to="+8613700001111", text="Bank: 482913 is your code", reference="t"
    )
    assert _run(cli_env, "sandbox", "sms", "--to", "+8613700001111", "--code").strip() == "482913"
