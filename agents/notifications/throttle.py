"""Client-side throttling under Telegram's limits, so 429s stay rare.

Limits (Bot API FAQ): about 30 messages/s overall, 20 messages/min in one group,
about 1 message/s in one chat. ``TelegramRateLimits`` is the pure policy (every
method takes ``now``); ``Throttle`` applies it on an event loop, in one process.
The fleet shares one budget through Redis (``shared_budget``), which falls back
to a ``Throttle`` while Redis is unreachable.

A send is booked at the earliest time that keeps every limit, which may lie in
the future: concurrent callers each get their own slot, and a chat that must
wait does not hold up the others. A booking abandoned (the caller was cancelled
while waiting) is simply an unused slot. Callers that wake late (a busy event
loop) would leave together, so departures pass a second, global window kept on
the times they really leave.

``waking_on_stop`` makes a sleep that ends when the worker stops into one that refuses the send then
(``ThrottleWait``): no send waits for its slot, or a pause, past the worker's stop.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import time
from collections.abc import Awaitable, Callable

__all__ = [
    "Departures",
    "SlidingWindow",
    "TelegramRateLimits",
    "Throttle",
    "ThrottleWait",
    "leave",
    "waking_on_stop",
]

GROUP_WINDOW = 60.0
_EPS = 1e-9  # float slack: a booking at x + window must count as outside x's window


class ThrottleWait(Exception):
    """The next free slot is further away than the caller agreed to wait."""

    def __init__(self, delay: float) -> None:
        super().__init__(delay)
        self.delay = delay

    def __str__(self) -> str:
        return f"throttled: next slot in {self.delay:.2f} s"


def waking_on_stop(
    sleep: Callable[[float], Awaitable[object]],
    stopping: Callable[[], bool],
    now: Callable[[], float] = time.monotonic,
) -> Callable[[float], Awaitable[None]]:
    """A sleep for the throttles: ``sleep`` (one that returns early once the worker stops, as mode's
    ``Service.sleep`` does), raising ``ThrottleWait`` with the time left once ``stopping()``."""

    async def nap(seconds: float) -> None:
        due = now() + seconds
        if not stopping():
            await sleep(seconds)
        if stopping():
            raise ThrottleWait(max(0.0, due - now()))

    return nap


class SlidingWindow:
    """At most ``limit`` events in any ``window`` seconds, over booked (possibly future) times."""

    def __init__(self, limit: int, window: float) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit must be >= 1 and window > 0")
        self.limit = limit
        self.window = window
        self._times: list[float] = []

    def __len__(self) -> int:
        return len(self._times)

    def _fits(self, t: float) -> bool:
        """True if booking ``t`` keeps every run of ``limit + 1`` bookings at least ``window`` wide."""
        times = self._times
        i = bisect.bisect_right(times, t)
        merged = [*times[max(0, i - self.limit) : i], t, *times[i : i + self.limit]]
        span = self.window - _EPS
        return all(merged[j + self.limit] - merged[j] >= span for j in range(len(merged) - self.limit))

    def earliest(self, t: float) -> float:
        """The earliest time at or after ``t`` that can be booked."""
        if len(self._times) < self.limit or self._fits(t):
            return t
        # Only the end of a booking's window can free a slot.
        times = self._times
        for x in times[bisect.bisect_right(times, t - self.window) :]:
            if self._fits(x + self.window):
                return x + self.window
        raise AssertionError("unreachable: after the last window end nothing overlaps")

    def book(self, t: float) -> None:
        bisect.insort(self._times, t)

    def forget(self, now: float) -> None:
        """Drop bookings that can no longer affect a time at or after ``now``."""
        cut = bisect.bisect_right(self._times, now - self.window)
        del self._times[:cut]


class Departures:
    """A second global window over the times sends really leave: ``floor(rate)`` in any ``floor(rate)/rate`` s.

    It only binds when sends woken late (a busy event loop) would bunch; a single late send does not
    push every later one back, as even spacing would.
    """

    def __init__(self, per_second: float) -> None:
        burst = max(1, math.floor(per_second))
        self._window = SlidingWindow(burst, burst / per_second)

    def wait(self, now: float) -> float:
        """Seconds until a send may really leave (0: it may leave ``now``; then call ``depart``)."""
        self._window.forget(now)
        return self._window.earliest(now) - now

    def depart(self, now: float) -> None:
        """Record that a send really leaves at ``now``."""
        self._window.book(now)


async def leave(departures: Departures, now: Callable[[], float], sleep: Callable[[float], Awaitable[object]]) -> float:
    """Wait until leaving keeps ``departures``' window, record the departure; return the wait."""
    waited = 0.0
    while (wait := departures.wait(now())) > 0:
        await sleep(wait)
        waited += wait
    departures.depart(now())
    return waited


class TelegramRateLimits:
    """The policy: global rate, per-chat interval and per-group minute window.

    ``global_per_second`` spaces sends evenly, one per ``1/rate`` s: a burst of a
    second's worth at once meets the receiver's queueing jitter, and the tail of
    one burst shares a second with the head of the next (measured: 11 429s at
    28 msg/s of 30 with bursts, none evenly spaced).
    Groups are chats with a negative id. Chats idle for ``idle_after`` seconds
    are forgotten, so memory stays bounded by the chats of the last minute.
    """

    def __init__(
        self,
        *,
        global_per_second: float = 30.0,
        group_per_minute: int = 20,
        chat_interval: float = 1.0,
        idle_after: float = 60.0,
    ) -> None:
        if global_per_second <= 0 or group_per_minute < 1 or chat_interval < 0:
            raise ValueError("rates must be positive")
        self.global_per_second = global_per_second
        self._global = SlidingWindow(1, 1 / global_per_second)
        self._paused_until = -math.inf
        self._group_per_minute = group_per_minute
        self._chat_interval = chat_interval
        self._idle_after = max(idle_after, GROUP_WINDOW, chat_interval)
        self._last: dict[int, float] = {}
        self._groups: dict[int, SlidingWindow] = {}
        self._next_prune = -math.inf

    def pause_until(self, until: float) -> None:
        """No send before ``until`` (Telegram answered 429 with ``retry_after``); pauses only lengthen."""
        self._paused_until = max(self._paused_until, until)

    @property
    def tracked_chats(self) -> int:
        """How many chats the policy currently remembers."""
        return len(self._last)

    def _slot(self, chat_id: int, now: float) -> float:
        t = max(now, self._paused_until)
        last = self._last.get(chat_id)
        if last is not None:
            t = max(t, last + self._chat_interval)
        group = self._groups.get(chat_id)
        while True:
            t = self._global.earliest(t)
            if group is None:
                return t
            in_group = group.earliest(t)
            if in_group == t:
                return t
            t = in_group

    def delay_for(self, chat_id: int, now: float) -> float:
        """Seconds from ``now`` until a message to ``chat_id`` may be sent (prunes first)."""
        self.prune(now)
        return self._slot(chat_id, now) - now

    def record(self, chat_id: int, at: float) -> None:
        """Book a send to ``chat_id`` at time ``at`` (``now + delay_for(...)``)."""
        self._global.book(at)
        self._last[chat_id] = max(at, self._last.get(chat_id, at))
        if chat_id < 0:
            self._groups.setdefault(chat_id, SlidingWindow(self._group_per_minute, GROUP_WINDOW)).book(at)

    def prune(self, now: float) -> None:
        """Forget chats idle for ``idle_after`` s and expired bookings (at most once a second).

        ``now`` must be the current time, never a booked future one.
        """
        if now < self._next_prune:
            return
        self._next_prune = now + 1.0
        self._global.forget(now)
        for group in self._groups.values():
            group.forget(now)
        idle = [chat for chat, last in self._last.items() if last + self._idle_after <= now]
        for chat in idle:
            del self._last[chat]
            self._groups.pop(chat, None)


class Throttle:
    """Waits for a slot under ``limits`` before each send; safe for concurrent callers.

    Check and booking happen with no ``await`` in between, so they are atomic on
    the event loop; the wait happens after the slot is booked.
    """

    def __init__(
        self,
        limits: TelegramRateLimits,
        *,
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self._limits = limits
        self._departures = Departures(limits.global_per_second)
        self._now = now
        self._sleep = sleep

    @property
    def rate(self) -> float:
        """Messages per second at most."""
        return self._limits.global_per_second

    async def pause(self, seconds: float) -> None:
        """Hold every send for ``seconds`` from now (a 429's ``retry_after``)."""
        self._limits.pause_until(self._now() + seconds)

    async def acquire(self, chat_id: int, max_wait: float | None = None) -> float:
        """Book the next slot for ``chat_id`` and wait for it; return the wait.

        Raises ``ThrottleWait`` (booking nothing) if the wait would exceed ``max_wait``.
        """
        now = self._now()
        delay = self._limits.delay_for(chat_id, now)
        if max_wait is not None and delay > max_wait:
            raise ThrottleWait(delay)
        self._limits.record(chat_id, now + delay)
        if delay > 0:
            await self._sleep(delay)
        return delay + await leave(self._departures, self._now, self._sleep)
