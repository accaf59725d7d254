"""`GATEWAY_GSMA_MM_*`: the GSMA Mobile Money API adapter's settings (docs/providers/gsma_mm.md)."""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from adapters.providers.settings import ProviderSettings

# The core-banking simulator's seeded clearing account for this provider, and the bank's
# disbursement (float) account the sandbox seeds: what `make run` uses with no configuration.
SANDBOX_CLEARING_ACCOUNTS = {"KES": "9100000000000201"}
SANDBOX_DISBURSEMENT_ACCOUNT = "accountid:2999"
_PARTY = re.compile(r"^[a-z]+:\S{1,256}$")


class GsmaMmSettings(ProviderSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_GSMA_MM_")

    provider_id: ClassVar[str] = "gsma_mm"
    sandbox_clearing_accounts: ClassVar[dict[str, str]] = SANDBOX_CLEARING_ACCOUNTS

    auth: Literal["none", "api_key", "oauth2"] = Field(
        "none",
        description="How the gateway authenticates: `api_key` (X-API-Key), `oauth2` (client "
        "credentials, Bearer token cached until expiry; with an API key set, both are sent) or "
        "`none` (the embedded sandbox; refused in production).",
    )
    api_key: SecretStr | None = Field(None, description="The API key sent as X-API-Key.")
    client_id: str | None = Field(None, description="OAuth 2.0 client id (auth=oauth2).")
    client_secret: SecretStr | None = Field(
        None, description="OAuth 2.0 client secret (auth=oauth2)."
    )
    token_url: str = Field(
        "",
        description="OAuth 2.0 token endpoint; empty means `<base URL>/oauth/token`.",
    )
    disbursement_account: str = Field(
        "",
        description="The bank's own (float) account at the provider that disbursements are paid "
        "from, as `key:value` (debitParty), e.g. `accountid:2999`. Empty uses the sandbox's.",
    )
    requesting_organisation_id: str | None = Field(
        None,
        description="Sent as requestingOrganisation (type organisationid) when the provider "
        "needs to know which organisation asks.",
    )
    callback_api_key: SecretStr | None = Field(
        None,
        description="Shared key the provider must send as X-API-Key on its callbacks; others "
        "get 401. Unset: callbacks are unauthenticated (each is still only a hint: the status "
        "is fetched from the provider before anything is applied).",
    )
    callback_tolerance_seconds: int = Field(
        300,
        ge=10,
        le=3600,
        description="A callback whose X-Date is further than this from our clock is refused.",
    )

    @field_validator("token_url")
    @classmethod
    def _token_url_is_http(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("disbursement_account")
    @classmethod
    def _party(cls, value: str) -> str:
        if value and not _PARTY.match(value):
            raise ValueError("expected key:value, e.g. accountid:2999 or msisdn:+254700000000")
        return value

    @model_validator(mode="after")
    def _credentials_for_auth(self) -> GsmaMmSettings:
        if self.auth == "api_key" and self.api_key is None:
            raise ValueError("auth=api_key needs GATEWAY_GSMA_MM_API_KEY")
        if self.auth == "oauth2" and (self.client_id is None or self.client_secret is None):
            raise ValueError(
                "auth=oauth2 needs GATEWAY_GSMA_MM_CLIENT_ID and GATEWAY_GSMA_MM_CLIENT_SECRET"
            )
        return self

    @property
    def resolved_token_url(self) -> str:
        return self.token_url or f"{self.resolved_base_url}/oauth/token"

    @property
    def debit_party(self) -> tuple[str, str]:
        key, _sep, value = (self.disbursement_account or SANDBOX_DISBURSEMENT_ACCOUNT).partition(
            ":"
        )
        return key, value

    def problems(self, environment: str) -> list[str]:
        problems = super().problems(environment)
        if environment == "production":
            if self.auth == "none":
                problems.append(
                    "GATEWAY_GSMA_MM_AUTH must be api_key or oauth2 in production "
                    "(the provider must know it is the bank calling)"
                )
            if not self.disbursement_account:
                problems.append(
                    "GATEWAY_GSMA_MM_DISBURSEMENT_ACCOUNT must name the bank's account at the "
                    "provider in production"
                )
        return problems
