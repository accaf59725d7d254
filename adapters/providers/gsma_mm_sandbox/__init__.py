"""A sandbox of a GSMA Mobile Money API provider, for development, demos and tests.

Its own Flask app and ledger of wallets, written from the specification; it shares no code
with the adapter in `adapters/providers/gsma_mm/` (tests/unit/test_layering.py checks that).
"""

from adapters.providers.gsma_mm_sandbox.app import (
    MODES,
    FaultRule,
    GsmaMmSandbox,
    http_sender,
)
from adapters.providers.gsma_mm_sandbox.ledger import SandboxLedger, Wallet
from adapters.providers.sandbox_kit import SandboxServer

__all__ = [
    "MODES",
    "FaultRule",
    "GsmaMmSandbox",
    "SandboxLedger",
    "SandboxServer",
    "Wallet",
    "http_sender",
]
