"""`wallet-gateway webhooks replay`: a time range (with a progress bar) or one event."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner

from gateway.cli import main
from gateway.domain.clock import FrozenClock, SystemClock, rfc3339
from tests.webhook_sink import WebhookSink, WebhookWorld


class Ceiling(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.fixture
def cli_env(settings: Any, container: Any) -> dict[str, str]:
    return {
        "GATEWAY_DATABASE_URL": settings.resolved_database_url,
        "GATEWAY_DATA_DIR": str(settings.data_dir),
        "GATEWAY_ENVIRONMENT": "test",
    }


@pytest.fixture
def world(container: Any) -> Iterator[WebhookWorld]:
    world = WebhookWorld(container)
    yield world
    world.close()


def test_replay_a_time_range_from_the_command_line(cli_env, world) -> None:  # type: ignore[no-untyped-def]
    clock = FrozenClock(SystemClock().now())
    answer = {"status": 502}
    with WebhookSink(lambda _r: answer["status"]) as sink:
        partner = world.partner()
        endpoint_id, _ = world.endpoint(partner, sink.url, ["transfer.*"])
        events = [world.emit(partner, at=clock.now()) for _ in range(3)]
        dispatcher = world.dispatcher(clock, rng=Ceiling(), webhook_retry_window_hours=0.01)
        for _ in range(20):
            dispatcher.run_once()
            clock.advance(seconds=40)
        assert {world.delivery(e, endpoint_id).status for e in events} == {"failed"}

        answer["status"] = 200
        result = CliRunner().invoke(
            main,
            [
                "webhooks", "replay",
                "--since", rfc3339(clock.now() - timedelta(hours=1)),
                "--until", rfc3339(clock.now()),
                "--endpoint", endpoint_id,
            ],
            env=cli_env,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "queued 3 deliveries again; skipped 0" in result.output
        assert "re-queueing failed deliveries" in result.output  # the progress bar
        world.dispatcher(SystemClock()).run_once()

    assert {world.delivery(e, endpoint_id).status for e in events} == {"delivered"}


def test_replay_one_event_from_the_command_line(cli_env, world) -> None:  # type: ignore[no-untyped-def]
    with WebhookSink() as sink:
        partner = world.partner()
        world.endpoint(partner, sink.url, ["transfer.*"])
        event_id = world.emit(partner, at=SystemClock().now())
        dispatcher = world.dispatcher(SystemClock())
        dispatcher.run_once()
        result = CliRunner().invoke(main, ["webhooks", "replay", "--event", event_id], env=cli_env)
        assert result.exit_code == 0, result.output
        assert "queued 1 deliveries again" in result.output
        dispatcher.run_once()
        assert len(sink.by_event(event_id)) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give either --event, or both --since and --until"),
        (["--since", "2026-01-01"], "give either --event, or both --since and --until"),
        (["--event", "evt_x", "--until", "2026-01-01"], "give either --event"),
        (["--since", "soon", "--until", "2026-01-01"], "expected a time such as"),
        (["--since", "2026-01-02", "--until", "2026-01-01"], "`until` must be after `since`"),
        (["--event", "evt_01jaaaaaaaaaaaaaaaaaaaaaaa"], "No such event"),
    ],
)
def test_bad_replay_arguments_are_explained(cli_env, args, message) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(main, ["webhooks", "replay", *args], env=cli_env)
    assert result.exit_code != 0
    assert message in result.output
