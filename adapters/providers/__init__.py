"""Wallet provider adapters: one package per provider, all implementing
`adapters.base.WalletProvider`, wired by `registry.py`."""
