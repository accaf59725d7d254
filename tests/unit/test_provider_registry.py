"""adapters/providers/registry.py and settings.py: typed per-provider settings from the
environment (or secret files), checked at start-up, and the registry of adapters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from adapters.base import WalletProvider
from adapters.providers.gsma_mm import GsmaMmProvider, GsmaMmSettings
from adapters.providers.registry import (
    PROVIDERS,
    ProviderRegistry,
    UnknownProvider,
    load_provider_settings,
    setting_variables,
)
from gateway.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("GATEWAY_"):
            monkeypatch.delenv(name)


def gateway_settings(**values: Any) -> Any:
    return load_settings(**{"environment": "test", **values})


def test_clearing_accounts_from_pairs_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_GSMA_MM_CLEARING_ACCOUNT", "kes:9100000000000201, UGX:91000002")
    assert GsmaMmSettings().clearing_accounts == {
        "KES": "9100000000000201",
        "UGX": "91000002",
    }
    monkeypatch.setenv("GATEWAY_GSMA_MM_CLEARING_ACCOUNT", '{"TZS": "9100000000000299"}')
    assert GsmaMmSettings().clearing_accounts == {"TZS": "9100000000000299"}


@pytest.mark.parametrize("value", ["9100000000000201", "KESX:9100000000000201", "KES:12"])
def test_bad_clearing_accounts_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="clearing_account"):
        GsmaMmSettings(clearing_account=value)


def test_the_sandbox_clearing_account_applies_only_without_a_provider() -> None:
    assert GsmaMmSettings().clearing_accounts == {"KES": "9100000000000201"}
    assert GsmaMmSettings(base_url="https://mm.example").clearing_accounts == {}


def test_auth_needs_its_credentials() -> None:
    with pytest.raises(ValueError, match="GATEWAY_GSMA_MM_API_KEY"):
        GsmaMmSettings(auth="api_key")
    with pytest.raises(ValueError, match="GATEWAY_GSMA_MM_CLIENT_ID"):
        GsmaMmSettings(auth="oauth2", client_id="id")
    assert GsmaMmSettings(auth="oauth2", client_id="id", client_secret="s").resolved_token_url == (
        "http://127.0.0.1:8091/oauth/token"
    )


def test_secrets_come_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "GATEWAY_GSMA_MM_API_KEY").write_text("from-a-file")
    monkeypatch.setenv("GATEWAY_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("GATEWAY_GSMA_MM_AUTH", "api_key")

    loaded = load_provider_settings(gateway_settings())

    api_key = loaded["gsma_mm"].api_key  # type: ignore[attr-defined]
    assert api_key.get_secret_value() == "from-a-file"


def test_production_refuses_what_is_only_for_development() -> None:
    production = load_settings(
        environment="production",
        database_url="postgresql+psycopg://u@db/gw",
        vault_keys_dir="/keys/vault",
        signing_keys_dir="/keys/signing",
        notifier="http",
        sms_gateway_url="https://sms.example",
        fee_income_accounts={"KES": "9200000000000303"},
        public_base_url="https://gw.example",
        core_banking_url="https://core.example/soap",
        providers="gsma_mm",
    )
    with pytest.raises(SettingsError) as raised:
        load_provider_settings(production)
    message = str(raised.value)
    for variable in (
        "GATEWAY_GSMA_MM_BASE_URL",
        "GATEWAY_GSMA_MM_AUTH",
        "GATEWAY_GSMA_MM_DISBURSEMENT_ACCOUNT",
    ):
        assert variable in message
    with pytest.raises(SettingsError, match="GATEWAY_GSMA_MM_CLEARING_ACCOUNT must name"):
        load_provider_settings(production, {"gsma_mm": {"base_url": "https://mm.example"}})
    assert load_provider_settings(production, {"gsma_mm": {
        "base_url": "https://mm.example", "auth": "api_key", "api_key": "k",
        "disbursement_account": "accountid:1", "clearing_account": "KES:9100000000000201",
    }})  # fmt: skip


def test_errors_name_the_variable() -> None:
    with pytest.raises(SettingsError, match="GATEWAY_GSMA_MM_READ_TIMEOUT_SECONDS"):
        load_provider_settings(gateway_settings(), {"gsma_mm": {"read_timeout_seconds": -1}})
    with pytest.raises(SettingsError, match="unknown provider 'paypal'"):
        load_provider_settings(gateway_settings(providers="gsma_mm,paypal"))


def test_which_providers_are_enabled() -> None:
    assert gateway_settings().enabled_providers == ["gsma_mm", "wechatpay", "alipay"]
    assert gateway_settings(providers="").enabled_providers == []
    assert gateway_settings(providers=" GSMA_MM ,gsma_mm").enabled_providers == ["gsma_mm"]
    assert load_provider_settings(gateway_settings(providers="")) == {}


def test_callbacks_go_to_the_public_url_unless_told_otherwise() -> None:
    assert gateway_settings().resolved_provider_callback_base_url == "http://127.0.0.1:8080"
    own = gateway_settings(provider_callback_base_url="http://gateway:8080/")
    assert own.resolved_provider_callback_base_url == "http://gateway:8080"


def test_the_registry_builds_each_enabled_adapter(tmp_path: Path) -> None:
    registry = ProviderRegistry.from_settings(gateway_settings(data_dir=tmp_path))
    try:
        adapter = registry.get("gsma_mm")
        assert isinstance(adapter, GsmaMmProvider)
        assert isinstance(adapter, WalletProvider)  # the Protocol, checked at run time
        assert registry.ids() == ["gsma_mm", "wechatpay", "alipay"] and "gsma_mm" in registry
        assert registry.clearing_account("gsma_mm", "KES") == "9100000000000201"
        assert registry.clearing_account("gsma_mm", "USD") is None
        assert registry.clearing_account("wechatpay", "CNY") == "9100000000000202"
        assert registry.clearing_account("alipay", "CNY") == "9100000000000203"
        assert registry.callback_url("gsma_mm") == (
            "http://127.0.0.1:8080/v1/providers/gsma_mm/webhooks"
        )
        for provider_id in ("wechatpay", "alipay"):
            assert isinstance(registry.get(provider_id), WalletProvider)
        # Embedded (no base URL): the development keys are created under the data directory.
        assert (tmp_path / "wechatpay-sandbox" / "merchant_private_key.pem").is_file()
        assert (tmp_path / "alipay-sandbox" / "app_private_key.pem").is_file()
        with pytest.raises(UnknownProvider):
            registry.get("paypal")
    finally:
        registry.close()


def test_only_some_providers(tmp_path: Path) -> None:
    registry = ProviderRegistry.from_settings(
        gateway_settings(data_dir=tmp_path, providers="gsma_mm")
    )
    try:
        assert registry.ids() == ["gsma_mm"]
        with pytest.raises(UnknownProvider):
            registry.get("wechatpay")
    finally:
        registry.close()


def test_every_provider_documents_its_variables() -> None:
    variables = setting_variables()
    assert {"GATEWAY_GSMA_MM_BASE_URL", "GATEWAY_GSMA_MM_CLEARING_ACCOUNT"} <= variables
    assert {"GATEWAY_WECHATPAY_MCHID", "GATEWAY_WECHATPAY_PLATFORM_KEYS_DIR",
            "GATEWAY_ALIPAY_APP_ID", "GATEWAY_ALIPAY_ALIPAY_PUBLIC_KEYS"} <= variables  # fmt: skip
    for spec in PROVIDERS.values():
        for name, field in spec.settings.model_fields.items():
            assert field.description, f"{spec.id}.{name} needs a description"
