"""The pure parts of the bot's budget: pauses of the local policy, the Redis fallback switch, the limits."""

from __future__ import annotations

import pytest

from agents.notifications.budget_policy import BudgetLimits, BudgetMode, FallbackSwitch
from agents.notifications.budget_scripts import budget_keys
from agents.notifications.throttle import TelegramRateLimits, Throttle
from tests.unit.notifications.test_throttle import FakeClock


def test_a_pause_holds_every_chat_until_it_ends() -> None:
    policy = TelegramRateLimits(global_per_second=10, chat_interval=0)
    policy.pause_until(5.0)
    assert policy.delay_for(1, 2.0) == pytest.approx(3.0)
    assert policy.delay_for(2, 6.0) == 0
    policy.pause_until(4.0)  # a shorter pause does not shorten the one in force
    assert policy.delay_for(3, 4.5) == pytest.approx(0.5)


async def test_the_local_throttle_waits_out_a_pause() -> None:
    clock = FakeClock()
    throttle = Throttle(TelegramRateLimits(global_per_second=10, chat_interval=0), now=clock, sleep=clock.sleep)
    await throttle.pause(2.0)
    assert await throttle.acquire(1) == pytest.approx(2.0)
    assert throttle.rate == 10


def test_the_switch_counts_an_outage_once_and_probes_by_how_redis_failed() -> None:
    switch = FallbackSwitch(probe_every=5.0, quick_probe=0.2)
    assert switch.mode is BudgetMode.SHARED
    assert switch.failed(slow=False) is True  # an outage starts: logged once
    assert switch.interval == 0.2  # a refusal costs nothing: Redis's return is noticed within 0.2 s
    assert switch.failed(slow=True) is False
    assert switch.interval == 5.0  # a timeout costs its wait: look less often
    assert switch.succeeded() is True and switch.mode is BudgetMode.SHARED
    assert switch.succeeded() is False


def test_invalid_limits_are_rejected() -> None:
    with pytest.raises(ValueError):
        BudgetLimits(global_per_second=0, chat_interval=1, group_per_minute=20)
    with pytest.raises(ValueError):
        BudgetLimits(global_per_second=30, chat_interval=1, group_per_minute=0)


def test_budget_keys_name_the_bot_never_the_token() -> None:
    keys = budget_keys("123456", -100)
    assert keys == (
        "lunch:telegram:123456:sends",
        "lunch:telegram:123456:chat:-100",
        "lunch:telegram:123456:group:-100",
        "lunch:telegram:123456:paused-until",
    )
