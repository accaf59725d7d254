"""`GATEWAY_ALIPAY_*`: the Alipay OpenAPI adapter's settings (docs/providers/alipay.md).

With no base URL (development) the adapter talks to the embedded sandbox and the credentials
may be left out: the application key is created in `<data_dir>/alipay-sandbox/` and the
sandbox publishes its Alipay public key there. With a base URL every credential is required.
Public-key mode only (Alipay's certificate mode, with app/root certificate serials, is not
implemented).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from adapters.providers.settings import ProviderSettings

SANDBOX_CLEARING_ACCOUNTS = {"CNY": "9100000000000203"}
SANDBOX_APP_ID = "2021000100000001"
SANDBOX_DIR_NAME = "alipay-sandbox"
_APP_ID = re.compile(r"^[0-9]{8,32}$")


class AlipaySettings(ProviderSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_ALIPAY_")

    provider_id: ClassVar[str] = "alipay"
    sandbox_clearing_accounts: ClassVar[dict[str, str]] = SANDBOX_CLEARING_ACCOUNTS

    base_url: str = Field(
        "",
        description="The Alipay OpenAPI gateway endpoint, e.g. "
        "`https://openapi.alipay.com/gateway.do` (Alipay's own sandbox: "
        "`https://openapi-sandbox.dl.alipaydev.com/gateway.do`). Empty means the embedded "
        "sandbox simulator (development only; refused in production).",
    )
    simulator_port: int = Field(
        8093,
        ge=1,
        le=65535,
        description="Port of the embedded Alipay sandbox started by `serve` when the base URL "
        "is empty.",
    )
    app_id: str = Field("", description="The bank's Alipay application id (APPID).")
    app_private_key_file: Path | None = Field(
        None,
        description="PEM file of the application's RSA private key (RSA2, 2048 bits) that "
        "signs every request.",
    )
    alipay_public_keys: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Alipay's public key file(s) (PEM, or the bare base64 the console shows), "
        "comma-separated: answers and notifications must verify with one of them (two during "
        "a rotation).",
    )
    alipay_public_keys_dir: Path | None = Field(
        None,
        description="A directory of Alipay public keys (`*.pem`), read again when a signature "
        "verifies with none of the loaded keys: rotate by adding the new file.",
    )
    order_title: str = Field(
        "Bank transfer",
        max_length=128,
        description="order_title of transfers when the payout has no description.",
    )
    notification_max_age_seconds: int = Field(
        172_800,
        ge=3_600,
        le=604_800,
        description="Notifications whose signed send time (`notify_time`, Beijing time, or "
        "`utc_timestamp`) is older than this are refused (`stale_timestamp`); Alipay re-sends "
        "for about 25 hours, so keep it above that. A send time more than 5 minutes ahead of "
        "our clock is refused too.",
    )
    sandbox_dir: Path | None = Field(
        None,
        description="Where the embedded sandbox and the adapter keep their development keys; "
        "empty means `<data_dir>/alipay-sandbox`.",
    )

    @field_validator("alipay_public_keys", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("app_id")
    @classmethod
    def _app_id(cls, value: str) -> str:
        if value and not _APP_ID.match(value):
            raise ValueError("an Alipay APPID is digits")
        return value

    def problems(self, environment: str) -> list[str]:
        problems = super().problems(environment)
        if self.embedded:
            return problems
        for name in ("app_id", "app_private_key_file"):
            if not getattr(self, name):
                problems.append(f"{self.variable(name)} is required with a base URL")
        if not self.alipay_public_keys and self.alipay_public_keys_dir is None:
            problems.append(
                f"{self.variable('alipay_public_keys')} or "
                f"{self.variable('alipay_public_keys_dir')} must name Alipay's public key"
            )
        return problems

    @property
    def gateway_url(self) -> str:
        """Where requests are POSTed: the configured endpoint, or the embedded sandbox's."""
        return self.base_url or f"{self.resolved_base_url}/gateway.do"

    def credentials(self, data_dir: Path) -> AlipayCredentials:
        sandbox = self.sandbox_dir or data_dir / SANDBOX_DIR_NAME
        embedded = self.embedded
        keys_dir = self.alipay_public_keys_dir
        if keys_dir is None and embedded and not self.alipay_public_keys:
            keys_dir = sandbox / "alipay-public-keys"
        return AlipayCredentials(
            app_id=self.app_id or (SANDBOX_APP_ID if embedded else ""),
            app_private_key_file=self.app_private_key_file or sandbox / "app_private_key.pem",
            generate_app_key=embedded and self.app_private_key_file is None,
            alipay_public_keys=tuple(self.alipay_public_keys),
            alipay_public_keys_dir=keys_dir,
        )


@dataclass(frozen=True)
class AlipayCredentials:
    app_id: str
    app_private_key_file: Path
    generate_app_key: bool  # development: create the key if it does not exist yet
    alipay_public_keys: tuple[Path, ...]
    alipay_public_keys_dir: Path | None
