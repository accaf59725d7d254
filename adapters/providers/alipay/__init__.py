"""The Alipay OpenAPI adapter (docs/providers/alipay.md).

`signing.py` holds the RSA2 signatures (requests, answers over their exact bytes,
notifications with and without `sign_type`), `certificates.py` the certificate serial numbers
of Alipay's certificate mode (公钥证书), `client.py` speaks HTTP, `mapping.py` holds the
parameters and the status and error tables, `webhooks.py` verifies and parses notifications,
`adapter.py` puts them together as a `WalletProvider`. The sandbox is a separate package
(`alipay_sandbox`).
"""

from adapters.providers.alipay.adapter import AlipayProvider
from adapters.providers.alipay.settings import AlipaySettings

__all__ = ["AlipayProvider", "AlipaySettings"]
