"""Tokenization vault: sensitive values encrypted at rest, found by a keyed blind index."""

from gateway.vault.vault import Vault, VaultError, VaultKeys

__all__ = ["Vault", "VaultError", "VaultKeys"]
