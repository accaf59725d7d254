import pytest

from gateway.settings import SettingsError, load_settings


def test_defaults_are_an_embedded_sqlite_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GATEWAY_DATABASE_URL", "GATEWAY_ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.resolved_database_url.startswith("sqlite:///")
    assert settings.port == 8080


def test_environment_variables_are_read_and_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_PORT", "9000")
    monkeypatch.setenv("GATEWAY_RATE_LIMIT_DEFAULT", "5/second;100/minute")
    settings = load_settings()
    assert settings.port == 9000
    assert settings.rate_limit_default == "5/second;100/minute"


def test_every_bad_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_PORT", "eighty")
    monkeypatch.setenv("GATEWAY_RATE_LIMIT_DEFAULT", "lots")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "GATEWAY_PORT" in str(caught.value)
    assert "GATEWAY_RATE_LIMIT_DEFAULT" in str(caught.value)


def test_production_refuses_unsafe_choices() -> None:
    with pytest.raises(SettingsError, match="PostgreSQL in production"):
        load_settings(environment="production")


def test_secrets_can_come_from_files(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "GATEWAY_METRICS_TOKEN").write_text("from-a-file")
    monkeypatch.setenv("GATEWAY_SECRETS_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.metrics_token is not None
    assert settings.metrics_token.get_secret_value() == "from-a-file"
