"""Webhook settings: safe defaults, and contradictions refused at start-up."""

from __future__ import annotations

import pytest

from gateway.settings import SettingsError, load_settings


def test_defaults_are_the_safe_ones() -> None:
    settings = load_settings()
    assert settings.webhook_allow_http is False
    assert settings.webhook_allow_private_targets is False
    assert settings.webhook_secret_overlap_hours == 24
    assert settings.webhook_retry_window_hours == 72


def test_production_refuses_plain_http_targets() -> None:
    with pytest.raises(SettingsError, match="GATEWAY_WEBHOOK_ALLOW_HTTP must be false"):
        load_settings(environment="production", webhook_allow_http=True)


def test_a_lease_shorter_than_an_attempt_is_refused() -> None:
    with pytest.raises(SettingsError, match="GATEWAY_WEBHOOK_LEASE_SECONDS"):
        load_settings(webhook_lease_seconds=30, webhook_read_timeout_seconds=20)
