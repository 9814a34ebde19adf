"""Throttling under Telegram's limits: the pure policy on a fake clock, and the async wrapper."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.notifications.throttle import SlidingWindow, TelegramRateLimits, Throttle, ThrottleWait


def limits(global_per_second: float = 30.0, group_per_minute: int = 20, chat_interval: float = 1.0):
    return TelegramRateLimits(
        global_per_second=global_per_second, group_per_minute=group_per_minute, chat_interval=chat_interval
    )


def book(policy: TelegramRateLimits, chat_id: int, now: float) -> float:
    """What ``Throttle.acquire`` does, on a fake clock: the booked time."""
    at = now + policy.delay_for(chat_id, now)
    policy.record(chat_id, at)
    return at


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


def test_global_rate_spaces_sends_evenly_without_bursts() -> None:
    policy = limits(global_per_second=3, chat_interval=0)
    policy.record(1, 0.0)
    assert policy.delay_for(2, 0.1) == pytest.approx(1 / 3 - 0.1)  # no burst, even inside the first second
    policy.record(2, 0.4)
    assert policy.delay_for(3, 0.5) == pytest.approx(0.4 + 1 / 3 - 0.5)
    assert policy.delay_for(3, 0.8) == 0


def test_fractional_global_rate_spaces_sends() -> None:
    policy = limits(global_per_second=0.5, chat_interval=0)
    policy.record(1, 0.0)
    assert policy.delay_for(2, 0.5) == pytest.approx(1.5)


def test_per_chat_interval_does_not_hold_up_other_chats() -> None:
    policy = limits(chat_interval=1.0)
    assert book(policy, 5, 0.0) == 0.0
    assert book(policy, 5, 0.0) == 1.0  # booked in the future
    assert book(policy, 5, 0.1) == 2.0
    assert book(policy, 6, 0.1) == 0.1
    assert policy.delay_for(5, 0.3) == pytest.approx(2.7)


def test_group_chats_get_twenty_per_minute() -> None:
    policy = limits(group_per_minute=20, chat_interval=1.0)
    for second in range(20):
        assert book(policy, -100, float(second)) == second
    assert policy.delay_for(-100, 20.0) == pytest.approx(40.0)
    assert policy.delay_for(-200, 20.0) == 0  # another group has its own window
    assert policy.delay_for(100, 20.0) == 0  # private chats only have the interval
    for second in range(21, 80):
        book(policy, 100, float(second))
    assert policy.delay_for(100, 80.0) == 0


def test_future_bookings_leave_earlier_gaps_usable() -> None:
    window = SlidingWindow(2, 1.0)
    window.book(0.0)
    window.book(1.0)
    assert window.earliest(0.1) == 0.1  # [0, 0.1] and [0.1, 1.0] both hold two
    window.book(0.1)
    assert window.earliest(0.2) == pytest.approx(1.1)


@given(
    st.lists(
        st.tuples(st.sampled_from([1, 2, 3, -10, -20]), st.floats(min_value=0, max_value=0.5)),
        max_size=80,
    )
)
def test_no_schedule_ever_breaks_a_limit(requests: list[tuple[int, float]]) -> None:
    rate, per_group, interval = 4, 3, 0.25
    policy = limits(global_per_second=rate, group_per_minute=per_group, chat_interval=interval)
    now = 0.0
    booked: list[tuple[int, float]] = []
    for chat, step in requests:
        now += step
        at = book(policy, chat, now)
        assert at >= now
        booked.append((chat, at))

    def max_in_window(times: list[float], span: float) -> int:
        times = sorted(times)
        return max((sum(1 for u in times if t <= u < t + span - 1e-9) for t in times), default=0)

    assert max_in_window([t for _, t in booked], 1.0) <= rate
    for chat in {c for c, _ in booked}:
        mine = sorted(t for c, t in booked if c == chat)
        assert all(b - a >= interval - 1e-9 for a, b in itertools.pairwise(mine))
        if chat < 0:
            assert max_in_window(mine, 60.0) <= per_group


def test_idle_chats_are_forgotten() -> None:
    policy = limits()
    for chat in range(-50, 50):
        policy.record(chat, 0.0)
    assert policy.tracked_chats == 100
    policy.record(7, 30.0)
    assert policy.delay_for(7, 59.0) == 0
    assert policy.tracked_chats == 100  # nothing idle for 60 s yet
    assert policy.delay_for(1, 61.0) == 0
    assert policy.tracked_chats == 1  # only chat 7 (last seen at 30 s) is remembered


async def test_acquire_sleeps_until_the_booked_slot() -> None:
    clock = FakeClock()
    throttle = Throttle(limits(chat_interval=1.0), now=clock, sleep=clock.sleep)
    assert await throttle.acquire(5) == 0
    assert await throttle.acquire(5) == pytest.approx(1.0)
    assert clock.slept == [pytest.approx(1.0)]


async def test_throttle_wait_when_the_slot_is_too_far_and_nothing_is_booked() -> None:
    clock = FakeClock()
    throttle = Throttle(limits(chat_interval=1.0), now=clock, sleep=clock.sleep)
    await throttle.acquire(5)
    with pytest.raises(ThrottleWait) as caught:
        await throttle.acquire(5, max_wait=0.5)
    assert caught.value.delay == pytest.approx(1.0)
    assert str(caught.value) == "throttled: next slot in 1.00 s"
    assert clock.slept == []
    # The refused call booked nothing: the next caller gets the same slot.
    assert await throttle.acquire(5, max_wait=1.0) == pytest.approx(1.0)


async def test_concurrent_callers_get_distinct_slots() -> None:
    throttle = Throttle(limits(global_per_second=100, chat_interval=0.05))
    sent: list[float] = []

    async def send() -> None:
        await throttle.acquire(-1)
        sent.append(time.monotonic())

    started = time.monotonic()
    await asyncio.gather(*(send() for _ in range(5)))
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert len(sent) == 5
    assert all(gap >= 0.04 for gap in gaps), gaps
    assert sent[-1] - started >= 0.19


async def test_callers_woken_late_by_a_busy_loop_still_leave_within_the_global_limit() -> None:
    throttle = Throttle(limits(global_per_second=20, chat_interval=0))
    departures: list[float] = []

    async def send(chat_id: int) -> None:
        await throttle.acquire(chat_id)
        departures.append(time.monotonic())

    async def block_the_loop() -> None:
        await asyncio.sleep(0.9)
        time.sleep(0.3)  # noqa: ASYNC251 - a busy loop: the second second's callers all wake at its end

    await asyncio.gather(block_the_loop(), *(send(chat) for chat in range(45)))
    departures.sort()
    most_in_a_second = max(bisect.bisect_left(departures, t + 0.999) - i for i, t in enumerate(departures))
    assert len(departures) == 45
    assert most_in_a_second <= 20


def test_invalid_limits_are_rejected() -> None:
    with pytest.raises(ValueError):
        limits(global_per_second=0)
    with pytest.raises(ValueError):
        SlidingWindow(0, 1.0)
