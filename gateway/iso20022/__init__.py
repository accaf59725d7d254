"""ISO 20022 cash-management messages (camt.053 statements, camt.054 notifications).

`catalog` knows the supported versions and their official schemas (contracts/iso20022);
`reader` streams a message, validates it entry by entry and maps it to `SettlementEntry`.
"""
