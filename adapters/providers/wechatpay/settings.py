"""`GATEWAY_WECHATPAY_*`: the WeChat Pay API v3 adapter's settings (docs/providers/wechatpay.md).

With no base URL (development) the adapter talks to the embedded sandbox and every credential
may be left out: the merchant key is created in `<data_dir>/wechatpay-sandbox/` and the
sandbox publishes its platform key there. Against a real provider (any base URL) every
credential is required, and production refuses the sandbox.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from adapters.providers.settings import ProviderSettings

# The core-banking simulator's seeded clearing account for WeChat Pay.
SANDBOX_CLEARING_ACCOUNTS = {"CNY": "9100000000000202"}
# What the embedded sandbox is set up with when nothing is configured (development only).
SANDBOX_MCHID = "1900000001"
SANDBOX_APPID = "wxd678efh567hg6787"
SANDBOX_MERCHANT_SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
SANDBOX_APIV3_KEY = "sandboxAPIv3key0wallet0gateway01"  # 32 bytes; the sandbox's, not a secret
SANDBOX_DIR_NAME = "wechatpay-sandbox"

_MCHID = re.compile(r"^[0-9]{6,32}$")
_SERIAL = re.compile(r"^[0-9A-Fa-f]{8,40}$")
_KEY_ID = re.compile(r"^(PUB_KEY_ID_[0-9A-Za-z]{1,64}|[0-9A-Fa-f]{8,40})$")


class WechatPaySettings(ProviderSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_WECHATPAY_")

    provider_id: ClassVar[str] = "wechatpay"
    sandbox_clearing_accounts: ClassVar[dict[str, str]] = SANDBOX_CLEARING_ACCOUNTS

    simulator_port: int = Field(
        8092,
        ge=1,
        le=65535,
        description="Port of the embedded WeChat Pay sandbox started by `serve` when the base "
        "URL is empty.",
    )
    mchid: str = Field("", description="The bank's WeChat Pay merchant id (商户号).")
    appid: str = Field(
        "",
        description="The AppID the recipients' OpenIDs belong to (公众号/小程序/APP bound to "
        "the merchant id).",
    )
    merchant_serial_no: str = Field(
        "", description="Serial number of the merchant API certificate whose key signs requests."
    )
    merchant_private_key_file: Path | None = Field(
        None,
        description="PEM file of the merchant API private key (apiclient_key.pem) that signs "
        "every request (SHA256withRSA).",
    )
    apiv3_key: SecretStr | None = Field(
        None,
        description="The APIv3 key (32 bytes) that decrypts notification resources "
        "(AEAD_AES_256_GCM).",
    )
    platform_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="WeChat Pay's verification keys, comma-separated: a platform certificate "
        "file (its serial is read from it) or `PUB_KEY_ID_…=file` for a WeChat Pay public key. "
        "Several at once during a rotation.",
    )
    platform_keys_dir: Path | None = Field(
        None,
        description="A directory of `*.pem` verification keys (certificates, or public keys "
        "named `<PUB_KEY_ID_…>.pem`), read again when an unknown serial arrives: rotate by "
        "adding the new file.",
    )
    transfer_scene_id: str = Field(
        "1000",
        description="转账场景ID of payouts: the scene the merchant was granted (e.g. 1000 "
        "现金营销, 1005 佣金报酬).",
    )
    transfer_scene_report_infos: Annotated[list[dict[str, str]], NoDecode] = Field(
        default_factory=list,
        description='转账场景报备信息 sent with every payout, as JSON: `[{"info_type": "…", '
        '"info_content": "…"}]` (what the scene requires).',
    )
    user_recv_perception: str = Field(
        "", description="用户收款感知 shown to the recipient (one of the scene's allowed words)."
    )
    callback_tolerance_seconds: int = Field(
        300,
        ge=30,
        le=3600,
        description="Answers and notifications whose Wechatpay-Timestamp is further than this "
        "from our clock are refused.",
    )
    sandbox_dir: Path | None = Field(
        None,
        description="Where the embedded sandbox and the adapter keep their development keys; "
        "empty means `<data_dir>/wechatpay-sandbox`.",
    )

    @field_validator("platform_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("platform_keys")
    @classmethod
    def _key_entries(cls, value: list[str]) -> list[str]:
        for entry in value:
            key_id, sep, path = entry.partition("=")
            if sep and (not _KEY_ID.match(key_id.strip()) or not path.strip()):
                raise ValueError(f"{entry!r}: expected a certificate file or PUB_KEY_ID_…=file")
        return value

    @field_validator("transfer_scene_report_infos", mode="before")
    @classmethod
    def _report_infos(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            return json.loads(text) if text else []
        return value

    @field_validator("transfer_scene_report_infos")
    @classmethod
    def _report_info_shape(cls, value: list[dict[str, str]]) -> list[dict[str, str]]:
        for item in value:
            if set(item) != {"info_type", "info_content"}:
                raise ValueError("each entry needs exactly info_type and info_content")
        return value

    @field_validator("mchid")
    @classmethod
    def _mchid(cls, value: str) -> str:
        if value and not _MCHID.match(value):
            raise ValueError("a merchant id is 6-32 digits")
        return value

    @field_validator("merchant_serial_no")
    @classmethod
    def _serial(cls, value: str) -> str:
        if value and not _SERIAL.match(value):
            raise ValueError("a certificate serial is hexadecimal")
        return value.upper()

    @field_validator("apiv3_key")
    @classmethod
    def _apiv3_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) not in (16, 24, 32):
            raise ValueError("the APIv3 key is 32 bytes (16 or 24 only in tests)")
        return value

    @field_validator("transfer_scene_id")
    @classmethod
    def _scene(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9]{4}", value):
            raise ValueError("a transfer scene id is 4 digits, e.g. 1000")
        return value

    def problems(self, environment: str) -> list[str]:
        problems = super().problems(environment)
        if self.embedded:
            return problems
        # A real (or standalone) provider: nothing may fall back to the sandbox's values.
        for name in ("mchid", "appid", "merchant_serial_no", "merchant_private_key_file"):
            if not getattr(self, name):
                problems.append(f"{self.variable(name)} is required with a base URL")
        if self.apiv3_key is None:
            problems.append(f"{self.variable('apiv3_key')} is required with a base URL")
        elif environment == "production" and len(self.apiv3_key.get_secret_value().encode()) != 32:
            problems.append(f"{self.variable('apiv3_key')} must be 32 bytes in production")
        if not self.platform_keys and self.platform_keys_dir is None:
            problems.append(
                f"{self.variable('platform_keys')} or {self.variable('platform_keys_dir')} "
                "must name WeChat Pay's verification keys"
            )
        return problems

    def credentials(self, data_dir: Path) -> WechatPayCredentials:
        """What the adapter signs and verifies with; the sandbox's defaults when embedded."""
        sandbox = self.sandbox_dir or data_dir / SANDBOX_DIR_NAME
        embedded = self.embedded
        apiv3 = self.apiv3_key.get_secret_value() if self.apiv3_key is not None else None
        entries: list[tuple[str | None, Path]] = []
        for entry in self.platform_keys:
            key_id, sep, path = entry.partition("=")
            entries.append((key_id.strip(), Path(path.strip())) if sep else (None, Path(entry)))
        keys_dir = self.platform_keys_dir
        if keys_dir is None and embedded and not entries:
            keys_dir = sandbox / "platform-keys"
        return WechatPayCredentials(
            mchid=self.mchid or (SANDBOX_MCHID if embedded else ""),
            appid=self.appid or (SANDBOX_APPID if embedded else ""),
            merchant_serial_no=self.merchant_serial_no
            or (SANDBOX_MERCHANT_SERIAL if embedded else ""),
            merchant_private_key_file=self.merchant_private_key_file
            or sandbox / "merchant_private_key.pem",
            generate_merchant_key=embedded and self.merchant_private_key_file is None,
            apiv3_key=(apiv3 or (SANDBOX_APIV3_KEY if embedded else "")).encode(),
            platform_keys=tuple(entries),
            platform_keys_dir=keys_dir,
        )


@dataclass(frozen=True)
class WechatPayCredentials:
    mchid: str
    appid: str
    merchant_serial_no: str
    merchant_private_key_file: Path
    generate_merchant_key: bool  # development: create the key if it does not exist yet
    apiv3_key: bytes
    platform_keys: tuple[tuple[str | None, Path], ...]
    platform_keys_dir: Path | None

    def __repr__(self) -> str:  # never print the APIv3 key
        return f"WechatPayCredentials(mchid={self.mchid!r}, serial={self.merchant_serial_no!r})"
