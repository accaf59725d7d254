"""A sandbox of WeChat Pay API v3, for development, demos and tests.

Its own Flask app, keys and ledger of users' balances, written from WeChat Pay's documentation;
it shares no code with the adapter in `adapters/providers/wechatpay/`
(tests/unit/test_layering.py checks that).
"""

from adapters.providers.wechatpay_sandbox.app import (
    MODES,
    PLATFORM_KEY_ID,
    FaultRule,
    WechatPaySandbox,
)
from adapters.providers.wechatpay_sandbox.ledger import SEED_TRANSACTION_ID, Ledger, User

__all__ = [
    "MODES",
    "PLATFORM_KEY_ID",
    "SEED_TRANSACTION_ID",
    "FaultRule",
    "Ledger",
    "User",
    "WechatPaySandbox",
]
