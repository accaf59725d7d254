"""Settings every wallet provider has, and what an adapter gets from the gateway.

Each provider package subclasses `ProviderSettings` with its own prefix (`GATEWAY_GSMA_MM_...`)
and adds its credentials. The registry builds them once at start-up (from the environment, or
from files in `GATEWAY_SECRETS_DIR` for secrets) and passes them down; nothing else reads the
environment. `problems(environment)` lists what cannot work, so contradictory or unsafe options
fail at start-up with the variable named.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from adapters.http import RetryPolicy, Timeouts, TlsOptions
from gateway.domain.clock import Clock

_CURRENCY = re.compile(r"^[A-Z]{3}$")
_ACCOUNT = re.compile(r"^[A-Z0-9]{5,34}$")


class ProviderSettings(BaseSettings):
    """Connection, retry, TLS and clearing settings shared by every provider."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, validate_default=True)

    # Set by each subclass: its id and what `make run` uses when no base URL is configured.
    provider_id: ClassVar[str] = ""
    sandbox_clearing_accounts: ClassVar[dict[str, str]] = {}

    base_url: str = Field(
        "",
        description="Base URL of the provider's API. Empty means the embedded sandbox "
        "simulator, which `serve` starts on loopback (development only; refused in production).",
    )
    connect_timeout_seconds: float = Field(
        3.0, gt=0, le=60, description="TCP/TLS connect timeout towards the provider."
    )
    read_timeout_seconds: float = Field(
        15.0,
        gt=0,
        le=300,
        description="How long one provider call may take to answer. A payout that times out has "
        "an unknown outcome and is resolved by a status query.",
    )
    retry_attempts: int = Field(
        3,
        ge=1,
        le=10,
        description="Attempts per call under the shared retry policy (connection errors, 429, "
        "5xx; payouts only because they carry the provider's idempotency key).",
    )
    retry_backoff_seconds: float = Field(
        0.2, ge=0, le=30, description="First back-off between attempts (exponential, jittered)."
    )
    retry_backoff_max_seconds: float = Field(
        2.0, ge=0, le=120, description="Longest back-off between attempts."
    )
    retry_after_max_seconds: float = Field(
        30.0,
        ge=0,
        le=600,
        description="A Retry-After longer than this ends the retries instead of waiting.",
    )
    pool_size: int = Field(
        10, ge=1, le=200, description="Keep-alive connections to the provider per process."
    )
    client_cert: Path | None = Field(
        None, description="PEM client certificate for mutual TLS with the provider."
    )
    client_key: Path | None = Field(
        None, description="PEM private key of the client certificate (if not in the cert file)."
    )
    ca_bundle: Path | None = Field(
        None,
        description="PEM bundle of the CA that issued the provider's TLS certificate; empty "
        "uses the system trust store.",
    )
    clearing_account: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="The provider's clearing account at the bank, per currency: "
        "`KES:9100000000000201` (several: `KES:...,UGX:...`, or a JSON object). Payouts are "
        "captured into it; a currency without an account cannot be paid out.",
    )
    simulator_host: str = Field(
        "127.0.0.1", description="Interface the embedded sandbox binds to (keep it loopback)."
    )
    simulator_port: int = Field(
        8091,
        ge=1,
        le=65535,
        description="Port of the embedded sandbox started by `serve` when the base URL is empty.",
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https:// (or be empty for the sandbox)")
        return value.rstrip("/")

    @field_validator("clearing_account", mode="before")
    @classmethod
    def _parse_accounts(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if not text:
            return {}
        if text.startswith("{"):
            return json.loads(text)
        accounts: dict[str, str] = {}
        for part in text.split(","):
            currency, sep, account = part.strip().partition(":")
            if not sep:
                raise ValueError("expected CURRENCY:ACCOUNT pairs, e.g. KES:9100000000000201")
            accounts[currency.strip().upper()] = account.strip()
        return accounts

    @field_validator("clearing_account")
    @classmethod
    def _accounts_are_valid(cls, value: dict[str, str]) -> dict[str, str]:
        for currency, account in value.items():
            if not _CURRENCY.match(currency):
                raise ValueError(f"{currency!r} is not an ISO 4217 currency code")
            if not _ACCOUNT.match(account):
                raise ValueError(f"the {currency} account must be 5-34 letters and digits")
        return value

    @model_validator(mode="after")
    def _key_needs_cert(self) -> ProviderSettings:
        if self.client_key is not None and self.client_cert is None:
            raise ValueError("client_key needs client_cert")
        return self

    # --- derived -------------------------------------------------------------------------------

    @property
    def embedded(self) -> bool:
        """True when no provider is configured and the sandbox simulator stands in for it."""
        return not self.base_url

    @property
    def resolved_base_url(self) -> str:
        return self.base_url or f"http://{self.simulator_host}:{self.simulator_port}"

    @property
    def clearing_accounts(self) -> dict[str, str]:
        if self.clearing_account:
            return dict(self.clearing_account)
        return dict(self.sandbox_clearing_accounts) if self.embedded else {}

    @property
    def timeouts(self) -> Timeouts:
        return Timeouts(self.connect_timeout_seconds, self.read_timeout_seconds)

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            attempts=self.retry_attempts,
            backoff_initial=self.retry_backoff_seconds,
            backoff_max=self.retry_backoff_max_seconds,
            retry_after_max=self.retry_after_max_seconds,
        )

    @property
    def tls(self) -> TlsOptions | None:
        if self.client_cert is None and self.ca_bundle is None:
            return None
        return TlsOptions(self.client_cert, self.client_key, self.ca_bundle)

    def variable(self, field: str) -> str:
        """The environment variable of one of this provider's fields."""
        return f"{self.model_config.get('env_prefix', '')}{field}".upper()

    def problems(self, environment: str) -> list[str]:
        """What cannot work with these settings in this environment (empty when fine)."""
        problems = []
        if not self.clearing_accounts:
            problems.append(
                f"{self.variable('clearing_account')} must name the provider's clearing "
                "account at the bank (e.g. KES:9100000000000201)"
            )
        if environment == "production" and self.embedded:
            problems.append(
                f"{self.variable('base_url')} must point at the provider in production "
                "(the embedded sandbox is for development and tests)"
            )
        return problems


@dataclass(frozen=True)
class ProviderContext:
    """What an adapter gets from the gateway besides its own settings."""

    environment: str
    callback_base_url: str  # public base URL the provider calls back on
    clock: Clock
    user_agent: str = "wallet-gateway"
    # The gateway's local state directory (GATEWAY_DATA_DIR): embedded sandboxes keep their
    # development keys under it.
    data_dir: Path = Path("var")

    def callback_url(self, provider_id: str) -> str:
        return f"{self.callback_base_url.rstrip('/')}/v1/providers/{provider_id}/webhooks"
