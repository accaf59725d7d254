"""Adapters to the outside world: core banking, wallet providers, notifiers."""
