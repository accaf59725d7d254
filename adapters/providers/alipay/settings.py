"""`GATEWAY_ALIPAY_*`: the Alipay OpenAPI adapter's settings (docs/providers/alipay.md).

With no base URL (development) the adapter talks to the embedded sandbox and the credentials
may be left out: the application key is created in `<data_dir>/alipay-sandbox/` and the
sandbox publishes its Alipay public key there. With a base URL every credential is required.

`signing_mode` is Alipay's 接口加签方式 of the application: `public_key` (公钥: Alipay's public
key files) or `certificate` (公钥证书, required for fund APIs such as
`alipay.fund.trans.uni.transfer` on recently created applications: the application's
certificate, Alipay's root chain and Alipay's certificate(s), from the Alipay console). The
files of the other mode may not be set (a contradiction is refused at start-up); the files are
read and checked when the adapter is built.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from adapters.providers.settings import ProviderSettings

SANDBOX_CLEARING_ACCOUNTS = {"CNY": "9100000000000203"}
SANDBOX_APP_ID = "2021000100000001"
SANDBOX_DIR_NAME = "alipay-sandbox"
SANDBOX_CERTS_DIR_NAME = "certs"  # the embedded sandbox's certificate mode publishes here
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
    signing_mode: Literal["public_key", "certificate"] = Field(
        "public_key",
        description="The application's 接口加签方式 in the Alipay console: `public_key` (Alipay's "
        "public key files) or `certificate` (公钥证书: the application's certificate, Alipay's "
        "root chain and Alipay's certificate; required for fund APIs such as "
        "alipay.fund.trans.uni.transfer on recent applications). Requests then carry "
        "`app_cert_sn` and `alipay_root_cert_sn`, answers are verified with the Alipay "
        "certificate their `alipay_cert_sn` names.",
    )
    app_cert_file: Path | None = Field(
        None,
        description="Certificate mode: the application's public-key certificate "
        "(`appCertPublicKey_<APPID>.crt` from the Alipay console), which must certify the "
        "application private key.",
    )
    alipay_root_cert_file: Path | None = Field(
        None,
        description="Certificate mode: Alipay's root certificate chain (`alipayRootCert.crt`, "
        "several PEM certificates in one file).",
    )
    alipay_certs: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Certificate mode: Alipay's public-key certificate file(s) "
        "(`alipayCertPublicKey_RSA2.crt`), comma-separated; each answer is verified with the "
        "one its `alipay_cert_sn` names.",
    )
    alipay_certs_dir: Path | None = Field(
        None,
        description="Certificate mode: a directory of Alipay certificates (`*.crt`), read again "
        "when an answer names a certificate SN that is not loaded: rotate by adding the new "
        "file.",
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

    @field_validator("alipay_public_keys", "alipay_certs", mode="before")
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
        certificate = self.signing_mode == "certificate"
        unused = (
            ("alipay_public_keys", "alipay_public_keys_dir")
            if certificate
            else ("app_cert_file", "alipay_root_cert_file", "alipay_certs", "alipay_certs_dir")
        )
        for name in unused:
            if getattr(self, name):
                problems.append(
                    f"{self.variable(name)} is set but {self.variable('signing_mode')} is "
                    f"{self.signing_mode}: it would be ignored"
                )
        if self.embedded:
            return problems
        for name in ("app_id", "app_private_key_file"):
            if not getattr(self, name):
                problems.append(f"{self.variable(name)} is required with a base URL")
        if certificate:
            for name in ("app_cert_file", "alipay_root_cert_file"):
                if getattr(self, name) is None:
                    problems.append(f"{self.variable(name)} is required in certificate mode")
            if not self.alipay_certs and self.alipay_certs_dir is None:
                problems.append(
                    f"{self.variable('alipay_certs')} or {self.variable('alipay_certs_dir')} "
                    "must name Alipay's certificate in certificate mode"
                )
        elif not self.alipay_public_keys and self.alipay_public_keys_dir is None:
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
        """The key and certificate files, with the embedded sandbox's where none is set."""
        sandbox = self.sandbox_dir or data_dir / SANDBOX_DIR_NAME
        embedded = self.embedded
        app_id = self.app_id or (SANDBOX_APP_ID if embedded else "")
        certificate = self.signing_mode == "certificate"
        keys_dir = self.alipay_public_keys_dir
        if keys_dir is None and embedded and not certificate and not self.alipay_public_keys:
            keys_dir = sandbox / "alipay-public-keys"
        certs = sandbox / SANDBOX_CERTS_DIR_NAME
        sandbox_certs = embedded and certificate
        certs_dir = self.alipay_certs_dir
        if certs_dir is None and sandbox_certs and not self.alipay_certs:
            certs_dir = certs / "alipay-certs"
        return AlipayCredentials(
            app_id=app_id,
            app_private_key_file=self.app_private_key_file or sandbox / "app_private_key.pem",
            generate_app_key=embedded and self.app_private_key_file is None,
            alipay_public_keys=tuple(self.alipay_public_keys),
            alipay_public_keys_dir=keys_dir,
            signing_mode=self.signing_mode,
            app_cert_file=self.app_cert_file
            or (certs / f"appCertPublicKey_{app_id}.crt" if sandbox_certs else None),
            alipay_root_cert_file=self.alipay_root_cert_file
            or (certs / "alipayRootCert.crt" if sandbox_certs else None),
            alipay_certs=tuple(self.alipay_certs),
            alipay_certs_dir=certs_dir,
        )


@dataclass(frozen=True)
class AlipayCredentials:
    app_id: str
    app_private_key_file: Path
    generate_app_key: bool  # development: create the key if it does not exist yet
    alipay_public_keys: tuple[Path, ...]
    alipay_public_keys_dir: Path | None
    signing_mode: Literal["public_key", "certificate"] = "public_key"
    app_cert_file: Path | None = None
    alipay_root_cert_file: Path | None = None
    alipay_certs: tuple[Path, ...] = ()
    alipay_certs_dir: Path | None = None
