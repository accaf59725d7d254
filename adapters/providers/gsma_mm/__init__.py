"""The GSMA Mobile Money API adapter (docs/providers/gsma_mm.md).

`client.py` speaks HTTP, `mapping.py` holds the request/answer transforms and the status and
error tables, `webhooks.py` verifies and parses callbacks, `adapter.py` puts them together as
a `WalletProvider`. The sandbox simulator is a separate package (`gsma_mm_sandbox`).
"""

from adapters.providers.gsma_mm.adapter import GsmaMmProvider
from adapters.providers.gsma_mm.settings import GsmaMmSettings

__all__ = ["GsmaMmProvider", "GsmaMmSettings"]
