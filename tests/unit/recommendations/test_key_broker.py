"""The key broker's pure parts: when to try Redis again, and the broker without shared states."""

from __future__ import annotations

import pytest

from agents.recommendations.key_broker import KeyBroker, Outage
from agents.recommendations.keypool import KeyPool, KeyState


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_outage_tries_again_every_retry_after_and_reports_each_transition_once():
    clock = Clock()
    outage = Outage(clock, retry_after=5.0)
    assert outage.due() and not outage.down
    assert outage.succeeded() is False  # up, and still up: nothing to tell
    assert outage.failed() is True  # up -> down: warn once
    assert outage.down and not outage.due()
    clock.t += 4.9
    assert not outage.due()
    clock.t += 0.1
    assert outage.due()
    assert outage.failed() is False  # still down: no second warning
    assert not outage.due()
    clock.t += 5.0
    assert outage.succeeded() is True  # down -> up: one notice
    assert outage.due() and not outage.down
    assert outage.succeeded() is False


async def test_a_broker_without_shared_states_is_the_local_pool():
    clock = Clock()
    pool = KeyPool(["AIza-one", "AIza-two"], now=clock)
    broker = KeyBroker(pool, None, now=clock, wall=lambda: 1_750_000_000.0)
    first = await broker.acquire()
    await broker.report_rate_limited(first, 30.0)
    second = await broker.acquire()
    broker.report_success(second)
    assert (first.index, second.index) == (0, 1)
    assert pool.state(0) is KeyState.COOLING
    await broker.report_invalid(await broker.acquire())
    assert await broker.acquire() is None
    assert pool.next_ready_in() == pytest.approx(30.0)
    assert broker.fallbacks == 0  # nothing to fall back from
    assert "local" in repr(broker) and "AIza" not in repr(broker)
