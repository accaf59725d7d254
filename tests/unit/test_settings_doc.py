"""The settings reference: generated from the model, and docs/operations.md kept in step."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
from click.testing import CliRunner
from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway import settings_doc
from gateway.cli import main
from gateway.settings import Settings

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def test_operations_guide_has_the_current_settings_reference() -> None:
    documented = settings_doc.current_section(OPERATIONS.read_text())
    generated = settings_doc.render_table()
    assert documented == generated, (
        "docs/operations.md's settings reference is out of date with gateway/settings.py: "
        "run `make docs` (wallet-gateway config docs --write docs/operations.md) and commit it"
    )


def test_every_setting_is_documented_with_its_variable() -> None:
    table = settings_doc.render_table()
    for name, field in Settings.model_fields.items():
        assert field.description, f"setting {name} needs a description"
        assert f"| `GATEWAY_{name.upper()}" in table  # nested settings: GATEWAY_X__Y


class _Sample(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SAMPLE_")

    mode: Literal["a", "b"] = Field("a", description="Mode a | b.")
    count: int = Field(3, ge=1, le=9, description="How many.")
    ratio: float = Field(0.5, gt=0, description="A ratio.")
    flag: bool = Field(True, description="On or off.")
    url: str = Field("", description="Empty by default.")
    token: SecretStr | None = Field(None, description="A secret.")
    folder: Path | None = Field(None, description="A directory.\n   Second line.")


def test_rendering_of_types_defaults_bounds_and_escaping() -> None:
    rows = settings_doc.render_table(_Sample).splitlines()
    assert rows[:2] == ["| Variable | Type | Default | Description |", "|---|---|---|---|"]
    assert rows[2:] == [
        "| `SAMPLE_MODE` | one of `a`, `b` | `a` | Mode a \\| b. |",
        "| `SAMPLE_COUNT` | integer (≥ 1, ≤ 9) | `3` | How many. |",
        "| `SAMPLE_RATIO` | number (> 0) | `0.5` | A ratio. |",
        "| `SAMPLE_FLAG` | boolean | `true` | On or off. |",
        "| `SAMPLE_URL` | string | empty | Empty by default. |",
        "| `SAMPLE_TOKEN` | secret string, optional | unset | A secret. |",
        "| `SAMPLE_FOLDER` | path, optional | unset | A directory. Second line. |",
    ]


class _Provider(BaseModel):
    base_url: str = Field("https://api.example", description="Where it is.")
    key: SecretStr | None = Field(None, description="Its key.")


class _Nested(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="N_", env_nested_delimiter="__")

    hosts: list[str] = Field(default_factory=list, description="Hosts.")
    labels: dict[str, int] = Field(default_factory=dict, description="Labels.")
    provider: _Provider = Field(default_factory=_Provider, description="A provider.")


class _Flat(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="F_")

    provider: _Provider | None = Field(None, description="A provider, as JSON.")


def test_rendering_of_collections_and_nested_settings() -> None:
    assert settings_doc.render_table(_Nested).splitlines()[2:] == [
        "| `N_HOSTS` | list of string | `[]` | Hosts. |",
        "| `N_LABELS` | mapping of string to integer (JSON) | `{}` | Labels. |",
        "| `N_PROVIDER__BASE_URL` | string | `https://api.example` | Where it is. |",
        "| `N_PROVIDER__KEY` | secret string, optional | unset | Its key. |",
    ]
    assert settings_doc.render_table(_Flat).splitlines()[2:] == [
        "| `F_PROVIDER` | JSON object (_Provider), optional | unset | A provider, as JSON. |",
    ]


def test_a_setting_without_description_is_refused() -> None:
    class Undocumented(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="X_")
        quiet: int = 1

    with pytest.raises(settings_doc.MissingDescription, match="X_QUIET"):
        settings_doc.render_table(Undocumented)


def test_output_ignores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    before = settings_doc.render_table()
    monkeypatch.setenv("GATEWAY_PORT", "9999")
    monkeypatch.setenv("GATEWAY_LOG_LEVEL", "DEBUG")
    assert settings_doc.render_table() == before


def test_replace_section_keeps_the_rest_of_the_page() -> None:
    start, end = settings_doc.START, settings_doc.END
    page = f"# Title\n\nintro\n{start}\nold table\n{end}\n\nafter\n"
    updated = settings_doc.replace_section(page, "| new |\n")
    assert updated == f"# Title\n\nintro\n{start}\n| new |\n{end}\n\nafter\n"
    assert settings_doc.current_section(updated) == "| new |\n"
    with pytest.raises(ValueError, match="markers"):
        settings_doc.replace_section("no markers here", "| new |\n")


def test_config_docs_prints_and_writes(tmp_path: Path) -> None:
    runner = CliRunner()
    printed = runner.invoke(main, ["config", "docs"], catch_exceptions=False)
    assert printed.exit_code == 0
    assert printed.output == settings_doc.render_table()

    page = tmp_path / "operations.md"
    page.write_text(f"before\n{settings_doc.START}\nstale\n{settings_doc.END}\nafter\n")
    written = runner.invoke(main, ["config", "docs", "--write", str(page)])
    assert written.exit_code == 0, written.output
    assert page.read_text() == settings_doc.replace_section(
        f"before\n{settings_doc.START}\n{settings_doc.END}\nafter\n", settings_doc.render_table()
    )

    unmarked = tmp_path / "plain.md"
    unmarked.write_text("nothing to replace\n")
    refused = runner.invoke(main, ["config", "docs", "--write", str(unmarked)])
    assert refused.exit_code == 1
    assert "markers" in refused.output
    assert unmarked.read_text() == "nothing to replace\n"
