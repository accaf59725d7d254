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
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The wallet providers a development or test gateway enables when GATEWAY_PROVIDERS is unset,
# each with its embedded sandbox (`make run` can demo a payout through every one).
DEVELOPMENT_PROVIDERS = ("gsma_mm", "wechatpay", "alipay")


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
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="HTTP server processes for `serve` (uvicorn, or gunicorn with `--gunicorn`).",
    )
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

    # --- deployment (gunicorn, `serve --gunicorn`) --------------------------------------------
    graceful_shutdown_seconds: int = Field(
        20,
        gt=0,
        le=600,
        description="On SIGTERM, how long in-flight requests may finish before processes are "
        "stopped. Keep it below the orchestrator's kill timeout.",
    )
    gunicorn_timeout_seconds: int = Field(
        60,
        ge=5,
        description="gunicorn: a process that does not report for this long is killed and "
        "replaced.",
    )
    gunicorn_keepalive_seconds: int = Field(
        75,
        ge=1,
        description="gunicorn: idle keep-alive time; keep it above the load balancer's idle "
        "timeout so the proxy never reuses a connection the gateway just closed.",
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
    vault_key_reload_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="How often each process re-reads the vault key directory (rotation pickup).",
    )
    rate_limit_default: str = Field(
        "100/second",
        description="Default per-partner request rate (`limits` syntax, e.g. "
        "'100/second;2000/minute').",
    )

    # --- links, consent and OTP ------------------------------------------------------------------
    bank_name: str = Field("Your bank", description="How SMS messages name the bank.")
    otp_ttl_seconds: int = Field(
        300, ge=60, le=1800, description="Lifetime of a one-time password."
    )
    otp_max_attempts: int = Field(5, ge=1, le=10, description="Wrong OTP tries before locking.")
    otp_max_sends: int = Field(
        4,
        ge=1,
        le=10,
        description="OTPs that may be sent for one link or transfer (first + resends).",
    )
    link_pending_ttl_hours: int = Field(
        24, ge=1, le=168, description="Unverified links expire after this."
    )
    link_max_consent_days: int = Field(
        730, ge=1, description="Longest consent a link may be created with."
    )
    notifier: Literal["sandbox", "http"] = Field(
        "sandbox",
        description="sandbox keeps SMS in <data_dir>/sandbox-sms.jsonl (development); "
        "http posts them to GATEWAY_SMS_GATEWAY_URL.",
    )
    sms_gateway_url: str | None = Field(None, description="SMS gateway endpoint (notifier=http).")
    sms_gateway_token: SecretStr | None = Field(
        None, description="Bearer token, or user:password with sms_gateway_auth=basic."
    )
    sms_gateway_auth: Literal["bearer", "basic"] = Field("bearer", description="SMS gateway auth.")
    sms_sender_id: str | None = Field(None, description="Sender id passed to the SMS gateway.")
    sms_timeout_seconds: float = Field(5.0, gt=0, le=30, description="SMS gateway timeout.")

    # --- transfers, limits and risk ------------------------------------------------------------
    business_timezone: str = Field(
        "UTC",
        description="IANA time zone whose calendar days and months bound daily/monthly limits.",
    )
    fee_income_accounts: dict[str, str] = Field(
        default_factory=lambda: {
            "CNY": "9200000000000301",
            "USD": "9200000000000302",
            "KES": "9200000000000303",
        },
        description="Fee income account per currency, JSON. The default names the simulator's "
        "fee accounts; production must set its own.",
    )
    step_up_thresholds: dict[str, str] = Field(
        default_factory=dict,
        description="Debits at or above these amounts need the customer's OTP, JSON: "
        '{"CNY": "5000.00"}.',
    )
    hold_max_hours: int = Field(
        168,
        ge=1,
        le=24 * 30,
        description="Longest a manual-capture hold may last (default 7 days).",
    )
    risk_velocity_max: int = Field(
        20, ge=1, description="Most transfers one link may start within the velocity window."
    )
    risk_velocity_window_seconds: int = Field(60, ge=1, description="The velocity window.")
    risk_suspend_after_hits: int = Field(
        5, ge=1, description="Risk rule hits within 24 h that suspend the link."
    )
    recovery_not_found_after_seconds: int = Field(
        120,
        ge=5,
        description="An unknown posting the core still reports NOT_FOUND after this is failed "
        "(never re-posted).",
    )
    recovery_stale_processing_seconds: int = Field(
        30,
        ge=5,
        description="A transfer left in processing this long is checked like an unknown one.",
    )
    recovery_interval_seconds: float = Field(
        2.0, gt=0, description="How often the recovery worker looks for unknown outcomes."
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
    events_settle_seconds: float = Field(
        5.0,
        ge=0,
        le=300,
        description="Oldest-first event reads (`GET /v1/events?order=asc`) leave out events "
        "younger than this, so a cursor never moves past an event whose transaction is still "
        "committing (event ids are taken when the event is written, not when it commits).",
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
    worker_metrics_port: int = Field(
        9464,
        ge=0,
        le=65535,
        description="Port on which `wallet-gateway worker` serves Prometheus metrics "
        "(`/metrics` on GATEWAY_HOST, with GATEWAY_METRICS_TOKEN when set): the workers' alert "
        "gauges (outbox backlog, unknown outcomes, open payouts, reconciliation breaks). "
        "0 turns it off.",
    )

    # --- core banking (SOAP; adapters/core_banking) ------------------------------------------
    core_banking_url: str = Field(
        "",
        description="Endpoint of the core-banking SOAP service (the WSDL's port address). Empty "
        "means the embedded simulator, which `serve` starts on loopback "
        "(`GATEWAY_CORE_BANKING_SIMULATOR_PORT`); refused in production.",
    )
    core_banking_connect_timeout_seconds: float = Field(
        2.0, gt=0, le=60, description="TCP/TLS connect timeout towards the core."
    )
    core_banking_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=300,
        description="Operation (read) timeout of one core-banking call. A posting that times out "
        "has an unknown outcome and is resolved with GetTransactionStatus, never re-posted.",
    )
    core_banking_health_timeout_seconds: float = Field(
        2.0, gt=0, le=30, description="Timeout of the Ping behind `/health/ready`."
    )
    core_banking_read_attempts: int = Field(
        3,
        ge=1,
        le=10,
        description="Attempts for read operations (GetAccount, GetBalance, GetTransactionStatus, "
        "GetStatement) on transport errors and retryable faults. Postings are never retried.",
    )
    core_banking_retry_backoff_seconds: float = Field(
        0.2,
        ge=0,
        le=10,
        description="First back-off between read attempts; doubles each attempt, with jitter.",
    )
    core_banking_retry_backoff_max_seconds: float = Field(
        2.0, ge=0, le=60, description="Longest back-off between read attempts."
    )
    core_banking_pool_size: int = Field(
        10,
        ge=1,
        le=200,
        description="Keep-alive HTTP connections to the core per process (match the handler "
        "thread count).",
    )
    core_banking_source_system: str = Field(
        "WALLET-GATEWAY",
        min_length=1,
        max_length=35,
        description="SourceSystem sent in every request header (how the core knows the caller).",
    )
    core_banking_username: str | None = Field(
        None, description="WS-Security UsernameToken user; empty sends no WS-Security header."
    )
    core_banking_password: SecretStr | None = Field(
        None, description="WS-Security UsernameToken password (set with the username)."
    )
    core_banking_password_digest: bool = Field(
        False,
        description="Send the UsernameToken password as a PasswordDigest (nonce + created) "
        "instead of PasswordText.",
    )
    core_banking_ca_bundle: Path | None = Field(
        None,
        description="PEM bundle of the CA that issued the core's TLS certificate (private PKI); "
        "empty uses the system trust store.",
    )
    core_banking_simulator_host: str = Field(
        "127.0.0.1",
        description="Interface the embedded core-banking simulator binds to (keep it loopback).",
    )
    core_banking_simulator_port: int = Field(
        8081,
        ge=1,
        le=65535,
        description="Port of the embedded core-banking simulator started by `serve` when "
        "`GATEWAY_CORE_BANKING_URL` is empty.",
    )
    core_banking_simulator_db: str = Field(
        "",
        description="Ledger of the core-banking simulator: a SQLite file path or `:memory:`. "
        "Empty means `<data_dir>/core-banking-simulator.db`.",
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

    # --- payouts and wallet providers (docs/payouts.md, docs/providers/) ---------------------
    providers: Annotated[list[str] | None, NoDecode] = Field(
        None,
        description="Enabled wallet providers, comma-separated ids (`gsma_mm`, `wechatpay`, "
        "`alipay`); each reads its own `GATEWAY_<ID>_*` settings (docs/providers/). Unset: all "
        "three with their embedded sandboxes in development and test, none in production. "
        "Empty: no payouts.",
    )
    provider_callback_base_url: str = Field(
        "",
        description="Base URL providers call back on (`<base>/v1/providers/<id>/webhooks`). "
        "Empty means GATEWAY_PUBLIC_BASE_URL.",
    )
    payout_hold_hours: int = Field(
        168,
        ge=1,
        le=24 * 30,
        description="Expiry of the hold a payout places on the customer's account; it must "
        "outlast the provider's longest pending time.",
    )
    payout_poll_seconds: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="A payout still pending at the provider (its callback late or lost) is "
        "asked about after this, then at doubling intervals.",
    )
    payout_poll_max_seconds: float = Field(
        900.0, gt=0, le=86400, description="Longest interval between two status queries."
    )
    payout_not_found_after_seconds: int = Field(
        300,
        ge=5,
        description="A payout the provider has no record of this long after it was sent is "
        "sent again under the same idempotency key (the provider deduplicates on it).",
    )
    provider_webhook_rate_limit: str = Field(
        "100/second",
        description="Inbound provider notifications accepted per provider (`limits` syntax).",
    )
    provider_webhook_invalid_rate_limit: str = Field(
        "20/minute",
        description="Notifications failing verification recorded per provider; above this they "
        "get 429 and only a metric.",
    )
    provider_notification_max_bytes: int = Field(
        65536,
        ge=1024,
        le=1_048_576,
        description="Largest provider notification body accepted and stored for audit.",
    )

    # --- settlement and reconciliation (docs/settlement.md) ----------------------------------
    settlement_missing_entry_sla_hours: float = Field(
        26.0,
        gt=0,
        le=24 * 14,
        description="A succeeded transfer, refund or fee whose entry the core has not reported "
        "this long after it succeeded becomes a `missing_entry` break (a day plus the time the "
        "end-of-day statement takes to arrive).",
    )
    settlement_missing_entry_lookback_days: float = Field(
        7.0,
        gt=0,
        le=366,
        description="How far back (beyond the SLA) the missing-entry check looks; older "
        "movements are not reconsidered.",
    )
    settlement_missing_entry_interval_seconds: float = Field(
        300.0, gt=0, description="How often the missing-entry check runs (worker job)."
    )
    settlement_apply_batch_size: int = Field(
        1000,
        ge=10,
        le=20000,
        description="Entries matched and committed per transaction when applying a message.",
    )
    settlement_message_lease_seconds: int = Field(
        300,
        ge=30,
        description="A message being received or applied belongs to its process this long "
        "(renewed as it progresses); after that a resend or the resume job takes it over.",
    )
    settlement_max_errors: int = Field(
        20,
        ge=1,
        le=1000,
        description="At most this many errors are reported for a rejected message.",
    )
    settlement_clearing_accounts: dict[str, str] = Field(
        default_factory=dict,
        description="Provider clearing accounts reconciled besides partner settlement and fee "
        'income accounts, JSON {"account": "provider"}: entries on them that match nothing '
        "become `unmatched_entry` breaks.",
    )
    core_banking_simulator_camt_push: bool = Field(
        True,
        description="Development: the embedded core-banking simulator pushes its booked entries "
        "to this gateway (`POST /core/v1/iso20022`) as camt.054 and, after each day, a camt.053 "
        "per settlement, clearing and fee account, as a `core` partner (created for it unless "
        "the push client id/secret are set). Ignored outside development.",
    )
    core_banking_simulator_camt_interval_seconds: float = Field(
        10.0, gt=0, le=3600, description="How often the simulator pushes new entries."
    )
    core_banking_simulator_camt_version: Literal["001.02", "001.04", "001.08"] = Field(
        "001.08", description="camt.053/camt.054 version the simulator emits."
    )
    core_banking_simulator_push_client_id: str | None = Field(
        None,
        description="Client id of the `core` partner the simulator pushes as (standalone "
        "simulator, or to reuse one partner across restarts).",
    )
    core_banking_simulator_push_client_secret: SecretStr | None = Field(
        None, description="Client secret of that partner."
    )

    @field_validator(
        "rate_limit_default", "provider_webhook_rate_limit", "provider_webhook_invalid_rate_limit"
    )
    @classmethod
    def _rate_limit_parses(cls, value: str) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError as exc:
            raise ValueError(f"not a rate limit expression: {exc}") from None
        return value

    @field_validator("providers", mode="before")
    @classmethod
    def _provider_ids(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            return [str(part).strip().lower() for part in value]
        return value

    @field_validator("provider_callback_base_url")
    @classmethod
    def _callback_base_is_http(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("public_base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("business_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("step_up_thresholds")
    @classmethod
    def _thresholds_are_money(cls, value: dict[str, str]) -> dict[str, str]:
        from gateway.domain.money import Money, MoneyError

        for currency, amount in value.items():
            try:
                Money.parse(amount, currency)
            except MoneyError as exc:
                raise ValueError(f"{currency}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _notifier_is_configured(self) -> Settings:
        if self.notifier == "http" and not self.sms_gateway_url:
            raise ValueError("GATEWAY_NOTIFIER=http needs GATEWAY_SMS_GATEWAY_URL")
        return self

    @field_validator("core_banking_url")
    @classmethod
    def _core_banking_url_is_http(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https:// (or be empty for the simulator)")
        return value

    @model_validator(mode="after")
    def _core_banking_credentials_pair(self) -> Settings:
        if (self.core_banking_username is None) != (self.core_banking_password is None):
            raise ValueError(
                "GATEWAY_CORE_BANKING_USERNAME and GATEWAY_CORE_BANKING_PASSWORD go together"
            )
        return self

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
        if self.notifier == "sandbox":
            problems.append("GATEWAY_NOTIFIER=sandbox would not text customers in production")
        if not self.public_base_url.startswith("https://"):
            problems.append("GATEWAY_PUBLIC_BASE_URL must be https:// in production")
        if not self.core_banking_url:
            problems.append(
                "GATEWAY_CORE_BANKING_URL must point at the bank's core in production "
                "(the embedded simulator is for development and tests)"
            )
        if "fee_income_accounts" not in self.model_fields_set:
            problems.append("GATEWAY_FEE_INCOME_ACCOUNTS must name the bank's fee accounts")
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
    def core_banking_embedded(self) -> bool:
        """True when no core is configured and the simulator stands in for it."""
        return not self.core_banking_url

    @property
    def resolved_core_banking_url(self) -> str:
        if self.core_banking_url:
            return self.core_banking_url
        return f"http://{self.core_banking_simulator_host}:{self.core_banking_simulator_port}/core-banking"

    @property
    def resolved_core_banking_simulator_db(self) -> str:
        if self.core_banking_simulator_db:
            return self.core_banking_simulator_db
        return str((self.data_dir / "core-banking-simulator.db").resolve())

    @property
    def issuer(self) -> str:
        return self.jwt_issuer or self.public_base_url

    @property
    def enabled_providers(self) -> list[str]:
        """The wallet providers in use (see `providers`)."""
        if self.providers is not None:
            return list(dict.fromkeys(self.providers))
        return [] if self.environment == "production" else list(DEVELOPMENT_PROVIDERS)

    @property
    def resolved_provider_callback_base_url(self) -> str:
        return self.provider_callback_base_url or self.public_base_url


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
