"""A sandbox of the Alipay OpenAPI gateway, for development, demos and tests.

Its own Flask app, keys and ledger of accounts, written from Alipay's documentation; it shares
no code with the adapter in `adapters/providers/alipay/` (tests/unit/test_layering.py checks
that).
"""

from adapters.providers.alipay_sandbox.app import MODES, AlipaySandbox, FaultRule
from adapters.providers.alipay_sandbox.ledger import SEED_TRADE_NO, Account, Ledger

__all__ = ["MODES", "SEED_TRADE_NO", "Account", "AlipaySandbox", "FaultRule", "Ledger"]
