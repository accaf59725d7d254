"""Notifiers: how OTPs reach a customer's bank-registered mobile number."""
