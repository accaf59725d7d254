"""Typed settings from the environment (`GATEWAY_*`), validated once at start-up.

Built once by `load_settings()` and passed down; nothing else reads the environment. Secrets can
also come from files: set `GATEWAY_SECRETS_DIR` to a directory holding one file per setting
named like the variable (e.g. `/run/secrets/GATEWAY_METRICS_TOKEN`), the usual way containers
mount secrets.
`docs/operations.md` holds the reference generated from this model (`wallet-gateway config docs`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsError(RuntimeError):
    """Settings that cannot work; the message names each offending variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", extra="ignore", frozen=True, validate_default=True
    )

    # --- process -----------------------------------------------------------------------------
    environment: Literal["development", "test", "production"] = Field(
        "development",
        description="development | test | production; production enforces safe choices.",
    )
    host: str = Field("127.0.0.1", description="Interface `serve` binds to.")
    port: int = Field(8080, ge=1, le=65535, description="Port `serve` listens on.")
    workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes for `serve`.")
    public_base_url: str = Field(
        "http://127.0.0.1:8080",
        description="External base URL of the gateway (token issuer, callback URLs).",
    )
    data_dir: Path = Field(
        Path("var"),
        description="Directory for local state: SQLite file, dev keys, sandbox outboxes.",
    )
    run_workers_in_process: bool = Field(
        True,
        description="Run background workers (outbox, recovery, expiry) as threads inside `serve`. "
        "Turn off when `wallet-gateway worker` processes run separately.",
    )

    # --- persistence -------------------------------------------------------------------------
    database_url: str = Field(
        "",
        description="SQLAlchemy URL. Empty means SQLite at `<data_dir>/gateway.db`; "
        "PostgreSQL as `postgresql+psycopg://user@host:5432/db`.",
    )
    database_pool_size: int = Field(10, ge=1, le=200, description="Connections kept per process.")
    database_pool_overflow: int = Field(
        10, ge=0, le=200, description="Extra connections under load."
    )
    database_pool_timeout_seconds: float = Field(
        10.0, gt=0, description="Wait for a free pooled connection before failing the request."
    )
    database_statement_timeout_ms: int = Field(
        15000, ge=0, description="PostgreSQL statement_timeout per connection (0 = none)."
    )
    redis_url: str | None = Field(
        None,
        description="Redis URL for shared rate limits across instances (`redis://host:6379/0`).",
    )

    # --- auth ----------------------------------------------------------------------------------
    jwt_issuer: str = Field("", description="`iss` of access tokens; empty means public_base_url.")
    jwt_audience: str = Field("wallet-gateway", description="`aud` of access tokens.")
    access_token_ttl_seconds: int = Field(
        900, ge=60, le=86400, description="Lifetime of issued access tokens."
    )
    signing_keys_dir: Path | None = Field(
        None,
        description="Directory of Ed25519 PEM keys signing access tokens (newest signs, all "
        "verify). "
        "Empty means `<data_dir>/signing-keys`, created on first use (not allowed in production).",
    )
    vault_keys_dir: Path | None = Field(
        None,
        description="Directory of vault keys (`<version>.key`, `index.key`). Empty means "
        "`<data_dir>/vault-keys`, created on first use (not allowed in production).",
    )
    rate_limit_default: str = Field(
        "100/second",
        description="Default per-partner request rate (`limits` syntax, e.g. "
        "'100/second;2000/minute').",
    )

    # --- HTTP ----------------------------------------------------------------------------------
    max_body_bytes: int = Field(
        1_048_576,
        ge=1024,
        description="Largest request body accepted on ordinary endpoints (413 above).",
    )
    max_bulk_body_bytes: int = Field(
        512 * 1_048_576,
        ge=1024,
        description="Largest body on bulk ingestion endpoints (ISO 20022 statements).",
    )
    idempotency_ttl_hours: int = Field(
        24,
        ge=24,
        le=24 * 30,
        description="How long Idempotency-Key records are kept (at least 24 h).",
    )
    idempotency_wait_seconds: float = Field(
        5.0,
        ge=0,
        le=30,
        description="How long a request waits for an in-flight request with the same key "
        "before answering 409.",
    )
    idempotency_lock_seconds: int = Field(
        60, ge=5, description="After this, an in-flight key whose request died may be taken over."
    )

    # --- observability -------------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level."
    )
    log_format: Literal["json", "console"] = Field(
        "json", description="json (production) or console."
    )
    metrics_token: SecretStr | None = Field(
        None, description="If set, `/metrics` requires `Authorization: Bearer <token>`."
    )

    # --- webhooks (events and signed deliveries to partners, docs/webhooks.md) -----------------
    webhook_allow_http: bool = Field(
        False,
        description="Accept plain http:// webhook endpoint URLs (development and tests against a "
        "local receiver). Refused in production: deliveries carry payment data.",
    )
    webhook_allow_private_targets: bool = Field(
        False,
        description="Allow webhook targets that resolve to loopback, private, link-local or "
        "reserved addresses. Off, the gateway cannot be aimed at the bank's own network (SSRF).",
    )
    webhook_secret_overlap_hours: float = Field(
        24.0,
        ge=0,
        le=24 * 7,
        description="After a secret rotation, deliveries stay signed with the previous secret "
        "too for this long, so receivers can switch without losing a delivery.",
    )
    webhook_connect_timeout_seconds: float = Field(
        3.0, gt=0, le=30, description="TCP/TLS connect timeout of one delivery attempt."
    )
    webhook_read_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=60,
        description="How long a receiver has to answer one delivery attempt.",
    )
    webhook_retry_initial_seconds: float = Field(
        5.0,
        gt=0,
        description="Backoff base: the n-th retry waits a random time in "
        "[0, min(max, initial * 2^n)] (exponential backoff with full jitter).",
    )
    webhook_retry_max_interval_seconds: float = Field(
        6 * 3600.0, gt=0, description="Longest wait between two attempts of one delivery."
    )
    webhook_retry_window_hours: float = Field(
        72.0,
        gt=0,
        le=24 * 14,
        description="A delivery is retried for this long after its first attempt, then marked "
        "failed (an operator can replay it).",
    )
    webhook_failing_after_failures: int = Field(
        5,
        ge=1,
        description="An endpoint is marked failing (operator notified) after this many "
        "consecutive failed attempts ...",
    )
    webhook_failing_after_minutes: float = Field(
        60.0,
        ge=0,
        description="... spanning at least this long without a single success.",
    )
    webhook_dispatch_batch_size: int = Field(
        50, ge=1, le=1000, description="Deliveries one dispatcher claims at a time."
    )
    webhook_dispatch_concurrency: int = Field(
        8, ge=1, le=64, description="Parallel HTTP requests per dispatcher process."
    )
    webhook_dispatch_interval_seconds: float = Field(
        1.0, gt=0, le=60, description="Dispatcher poll interval when there is nothing due."
    )
    webhook_timeout_pause_max_seconds: float = Field(
        300.0,
        ge=0,
        description="An endpoint that times out is paused (10 s, doubling per consecutive "
        "failure, up to this) so one slow receiver cannot tie up the dispatchers; 0 disables.",
    )
    webhook_lease_seconds: int = Field(
        300,
        ge=30,
        description="A claimed delivery belongs to its dispatcher this long; if the dispatcher "
        "dies, another one retries it afterwards.",
    )
    webhook_response_body_bytes: int = Field(
        1024, ge=0, le=65536, description="How much of a receiver's answer each attempt keeps."
    )
    webhook_retention_days: int = Field(
        30,
        ge=1,
        description="Finished deliveries and their attempts are deleted after this many days.",
    )

    @field_validator("rate_limit_default")
    @classmethod
    def _rate_limit_parses(cls, value: str) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError as exc:
            raise ValueError(f"not a rate limit expression: {exc}") from None
        return value

    @field_validator("public_base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _webhook_timings_fit(self) -> Settings:
        # A claim must outlive one attempt by a wide margin, or two dispatchers could send it.
        if self.webhook_lease_seconds < 3 * (
            self.webhook_connect_timeout_seconds + self.webhook_read_timeout_seconds
        ):
            raise ValueError(
                "GATEWAY_WEBHOOK_LEASE_SECONDS must be at least 3x the connect + read timeouts"
            )
        return self

    @model_validator(mode="after")
    def _production_is_safe(self) -> Settings:
        if self.environment != "production":
            return self
        problems = []
        if self.resolved_database_url.startswith("sqlite"):
            problems.append("GATEWAY_DATABASE_URL must point at PostgreSQL in production")
        if self.vault_keys_dir is None:
            problems.append("GATEWAY_VAULT_KEYS_DIR must be set in production (no generated keys)")
        if self.signing_keys_dir is None:
            problems.append(
                "GATEWAY_SIGNING_KEYS_DIR must be set in production (no generated keys)"
            )
        if not self.public_base_url.startswith("https://"):
            problems.append("GATEWAY_PUBLIC_BASE_URL must be https:// in production")
        if self.webhook_allow_http:
            problems.append("GATEWAY_WEBHOOK_ALLOW_HTTP must be false in production")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # --- derived -------------------------------------------------------------------------------
    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'gateway.db').resolve()}"

    @property
    def resolved_signing_keys_dir(self) -> Path:
        return self.signing_keys_dir or self.data_dir / "signing-keys"

    @property
    def resolved_vault_keys_dir(self) -> Path:
        return self.vault_keys_dir or self.data_dir / "vault-keys"

    @property
    def issuer(self) -> str:
        return self.jwt_issuer or self.public_base_url


def load_settings(**overrides: object) -> Settings:
    """Read and validate settings; raise `SettingsError` naming every bad variable."""
    secrets_dir = os.environ.get("GATEWAY_SECRETS_DIR") or None
    try:
        return Settings(_secrets_dir=secrets_dir, **overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            name = f"GATEWAY_{field.upper()}" if field else "settings"
            lines.append(f"  {name}: {error['msg'].removeprefix('Value error, ')}")
        raise SettingsError("invalid configuration:\n" + "\n".join(lines)) from None
