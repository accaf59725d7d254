"""wallet-gateway: the bank-to-wallet integration gateway."""

__version__ = "0.1.0"
