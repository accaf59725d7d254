"""The WeChat Pay API v3 adapter (docs/providers/wechatpay.md).

`signing.py` holds the cryptography (request signatures, answer and notification
verification, AES-GCM resources), `client.py` speaks HTTP, `mapping.py` holds the bodies and
the status and error tables, `webhooks.py` verifies and parses notifications, `adapter.py`
puts them together as a `WalletProvider`. The sandbox is a separate package
(`wechatpay_sandbox`).
"""

from adapters.providers.wechatpay.adapter import WechatPayProvider
from adapters.providers.wechatpay.settings import WechatPaySettings

__all__ = ["WechatPayProvider", "WechatPaySettings"]
