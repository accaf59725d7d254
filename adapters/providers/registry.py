"""Wallet providers by id: adapter factory, typed settings and sandbox, built once at start-up.

Adding a provider = its package under `adapters/providers/<id>/` (client, mapping, webhooks,
settings), ONE entry in `PROVIDERS` below, its recorded contracts under
`contracts/providers/<id>/` and its tests. Nothing in the payout service or the API names a
provider.

`ProviderRegistry.from_settings` reads the enabled providers' settings (`GATEWAY_<ID>_*`,
secrets also from files in `GATEWAY_SECRETS_DIR`) and refuses to start, naming every bad
variable, when something cannot work (`SettingsError`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from adapters.base import WalletProvider
from adapters.providers.alipay import AlipayProvider, AlipaySettings
from adapters.providers.gsma_mm import GsmaMmProvider, GsmaMmSettings
from adapters.providers.settings import ProviderContext, ProviderSettings
from adapters.providers.wechatpay import WechatPayProvider, WechatPaySettings
from gateway.domain.clock import Clock, SystemClock
from gateway.settings import Settings, SettingsError


class RunningSandbox(Protocol):
    """A sandbox simulator serving on loopback (started by `serve` or `simulator <id>`)."""

    @property
    def base_url(self) -> str: ...

    def wait(self) -> None: ...

    def shutdown(self) -> None: ...


@dataclass(frozen=True)
class ProviderSpec:
    id: str
    title: str
    settings: type[ProviderSettings]
    build: Callable[[Any, ProviderContext], WalletProvider]
    # Start the provider's sandbox with credentials matching the settings (None: no sandbox):
    # (settings, host, port, the gateway's data directory).
    sandbox: Callable[[Any, str, int, Path], RunningSandbox] | None = None


def _gsma_mm_sandbox(
    settings: GsmaMmSettings, host: str, port: int, data_dir: Path
) -> RunningSandbox:
    from adapters.providers.gsma_mm_sandbox import GsmaMmSandbox

    def secret(value: Any) -> str | None:
        return value.get_secret_value() if value is not None else None

    sandbox = GsmaMmSandbox(
        api_key=secret(settings.api_key) if settings.auth != "none" else None,
        client_id=settings.client_id if settings.auth == "oauth2" else None,
        client_secret=secret(settings.client_secret) if settings.auth == "oauth2" else None,
        callback_api_key=secret(settings.callback_api_key),
        processing_delay=1.0,  # long enough to see a payout `processing` in a demo
    )
    return sandbox.serve(host, port)


def _wechatpay_sandbox(
    settings: WechatPaySettings, host: str, port: int, data_dir: Path
) -> RunningSandbox:
    """The WeChat Pay sandbox with the gateway's merchant id, keys and APIv3 key; it publishes
    its platform public key where the adapter reads WeChat Pay's keys."""
    from adapters.providers.wechatpay.settings import SANDBOX_DIR_NAME
    from adapters.providers.wechatpay_sandbox import WechatPaySandbox

    credentials = settings.credentials(data_dir)
    sandbox = WechatPaySandbox.from_files(
        keys_dir=settings.sandbox_dir or data_dir / SANDBOX_DIR_NAME,
        merchant_private_key_file=credentials.merchant_private_key_file,
        publish_dir=credentials.platform_keys_dir,
        mchid=credentials.mchid,
        appid=credentials.appid,
        merchant_serial_no=credentials.merchant_serial_no,
        apiv3_key=credentials.apiv3_key,
        processing_delay=1.0,  # long enough to see a payout `processing` in a demo
    )
    return sandbox.serve(host, port)


def _alipay_sandbox(
    settings: AlipaySettings, host: str, port: int, data_dir: Path
) -> RunningSandbox:
    """The Alipay sandbox with the gateway's app id and key; it publishes its Alipay public
    key where the adapter reads Alipay's keys."""
    from adapters.providers.alipay.settings import SANDBOX_DIR_NAME
    from adapters.providers.alipay_sandbox import AlipaySandbox

    credentials = settings.credentials(data_dir)
    keys_dir = settings.sandbox_dir or data_dir / SANDBOX_DIR_NAME
    sandbox = AlipaySandbox.from_files(
        keys_dir=keys_dir,
        app_private_key_file=credentials.app_private_key_file,
        publish_dir=credentials.alipay_public_keys_dir,
        app_id=credentials.app_id,
        # Certificate mode: the sandbox issues the console's files where the adapter reads them.
        certificate_mode=credentials.signing_mode == "certificate",
        app_cert_file=credentials.app_cert_file,
        alipay_root_cert_file=credentials.alipay_root_cert_file,
        alipay_certs_dir=credentials.alipay_certs_dir,
        processing_delay=1.0,
    )
    return sandbox.serve(host, port)


PROVIDERS: dict[str, ProviderSpec] = {
    spec.id: spec
    for spec in (
        ProviderSpec(
            "gsma_mm", "GSMA Mobile Money API", GsmaMmSettings, GsmaMmProvider, _gsma_mm_sandbox
        ),
        ProviderSpec(
            "wechatpay",
            "WeChat Pay API v3",
            WechatPaySettings,
            WechatPayProvider,
            _wechatpay_sandbox,
        ),
        ProviderSpec("alipay", "Alipay OpenAPI", AlipaySettings, AlipayProvider, _alipay_sandbox),
    )
}


def _problem(prefix: str, error: Any) -> str:
    field = ".".join(str(part) for part in error["loc"])
    name = f"{prefix}{field}".upper() if field else prefix.rstrip("_")
    return f"  {name}: {error['msg'].removeprefix('Value error, ')}"


def load_provider_settings(
    settings: Settings, overrides: dict[str, dict[str, Any]] | None = None
) -> dict[str, ProviderSettings]:
    """The enabled providers' settings; raises `SettingsError` listing every problem."""
    secrets_dir = os.environ.get("GATEWAY_SECRETS_DIR") or None
    loaded: dict[str, ProviderSettings] = {}
    problems: list[str] = []
    for provider_id in settings.enabled_providers:
        spec = PROVIDERS.get(provider_id)
        if spec is None:
            problems.append(
                f"  GATEWAY_PROVIDERS: unknown provider {provider_id!r} "
                f"(known: {', '.join(sorted(PROVIDERS))})"
            )
            continue
        prefix = str(spec.settings.model_config.get("env_prefix", ""))
        try:
            values = spec.settings(
                _secrets_dir=secrets_dir,
                **(overrides or {}).get(provider_id, {}),
            )
        except ValidationError as exc:
            problems += [_problem(prefix, error) for error in exc.errors()]
            continue
        problems += [f"  {problem}" for problem in values.problems(settings.environment)]
        loaded[provider_id] = values
    if problems:
        raise SettingsError("invalid provider configuration:\n" + "\n".join(problems))
    return loaded


def setting_variables() -> set[str]:
    """Every `GATEWAY_<ID>_*` variable of every known provider (docs, compose checks)."""
    return {
        f"{spec.settings.model_config.get('env_prefix', '')}{name}".upper()
        for spec in PROVIDERS.values()
        for name in spec.settings.model_fields
    }


class UnknownProvider(LookupError):
    """No enabled provider has this id."""


class ProviderRegistry:
    """The enabled providers' adapters and settings, built once per process."""

    def __init__(
        self,
        adapters: dict[str, WalletProvider],
        settings: dict[str, ProviderSettings],
        context: ProviderContext,
    ) -> None:
        self._adapters = dict(adapters)
        self._settings = dict(settings)
        self.context = context

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        clock: Clock | None = None,
        overrides: dict[str, dict[str, Any]] | None = None,
    ) -> ProviderRegistry:
        context = ProviderContext(
            environment=settings.environment,
            callback_base_url=settings.resolved_provider_callback_base_url,
            clock=clock or SystemClock(),
            data_dir=settings.data_dir,
        )
        loaded = load_provider_settings(settings, overrides)
        adapters = {
            provider_id: PROVIDERS[provider_id].build(values, context)
            for provider_id, values in loaded.items()
        }
        return cls(adapters, loaded, context)

    def ids(self) -> list[str]:
        return list(self._adapters)

    def __contains__(self, provider_id: object) -> bool:
        return provider_id in self._adapters

    def get(self, provider_id: str) -> WalletProvider:
        try:
            return self._adapters[provider_id]
        except KeyError:
            raise UnknownProvider(provider_id) from None

    def settings_for(self, provider_id: str) -> ProviderSettings:
        try:
            return self._settings[provider_id]
        except KeyError:
            raise UnknownProvider(provider_id) from None

    def clearing_account(self, provider_id: str, currency: str) -> str | None:
        """The provider's clearing account at the bank for `currency` (None: not offered)."""
        return self.settings_for(provider_id).clearing_accounts.get(currency)

    def callback_url(self, provider_id: str) -> str:
        return self.context.callback_url(provider_id)

    def replace(self, provider_id: str, adapter: WalletProvider) -> WalletProvider | None:
        """Swap an adapter (tests); returns the previous one."""
        previous = self._adapters.get(provider_id)
        self._adapters[provider_id] = adapter
        return previous

    def close(self) -> None:
        for adapter in self._adapters.values():
            close = getattr(adapter, "close", None)
            if callable(close):
                close()


def start_embedded_sandboxes(settings: Settings) -> list[tuple[str, RunningSandbox]]:
    """Start the sandbox of every enabled provider configured without a base URL (`serve`)."""
    running: list[tuple[str, RunningSandbox]] = []
    try:
        for provider_id, values in load_provider_settings(settings).items():
            spec = PROVIDERS[provider_id]
            if values.embedded and spec.sandbox is not None:
                sandbox = spec.sandbox(
                    values, values.simulator_host, values.simulator_port, settings.data_dir
                )
                running.append((provider_id, sandbox))
    except BaseException:
        for _provider_id, sandbox in running:
            sandbox.shutdown()
        raise
    return running
