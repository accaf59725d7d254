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


def _production(**overrides: object) -> dict[str, object]:
    return {
        "environment": "production",
        "database_url": "postgresql+psycopg://gw@db:5432/gw",
        "vault_keys_dir": "/run/keys/vault",
        "signing_keys_dir": "/run/keys/signing",
        "public_base_url": "https://gateway.bank.example",
        "notifier": "http",
        "sms_gateway_url": "https://sms.bank.example/messages",
        "fee_income_accounts": {"CNY": "1"},
        **overrides,
    }


def test_production_refuses_the_embedded_core_banking_simulator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GATEWAY_CORE_BANKING_URL", raising=False)
    with pytest.raises(SettingsError, match="GATEWAY_CORE_BANKING_URL"):
        load_settings(**_production())
    settings = load_settings(**_production(core_banking_url="https://core.bank.example/soap"))
    assert not settings.core_banking_embedded
    assert settings.resolved_core_banking_url == "https://core.bank.example/soap"


def test_an_empty_core_banking_url_means_the_embedded_simulator(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("GATEWAY_CORE_BANKING_URL", raising=False)
    settings = load_settings(core_banking_simulator_port=18081, data_dir=tmp_path)
    assert settings.core_banking_embedded
    assert settings.resolved_core_banking_url == "http://127.0.0.1:18081/core-banking"
    assert settings.resolved_core_banking_simulator_db == str(
        tmp_path.resolve() / "core-banking-simulator.db"
    )


def test_core_banking_settings_are_validated() -> None:
    with pytest.raises(SettingsError, match="GATEWAY_CORE_BANKING_URL"):
        load_settings(core_banking_url="core.bank.example")
    with pytest.raises(SettingsError, match="go together"):
        load_settings(core_banking_username="gateway")
    with pytest.raises(SettingsError, match="GATEWAY_CORE_BANKING_SOURCE_SYSTEM"):
        load_settings(core_banking_source_system="x" * 36)
    with pytest.raises(SettingsError, match="GATEWAY_CORE_BANKING_TIMEOUT_SECONDS"):
        load_settings(core_banking_timeout_seconds=0)
