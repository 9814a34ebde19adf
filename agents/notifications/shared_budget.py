"""The bot's send budget, shared by every worker that sends as one bot, through Redis.

Telegram's limits belong to the bot, not to a process: about 30 messages/s in all, 20 per minute
in one group, one per second in one chat. Each send books its slot with a Lua script: the earliest
time, on Redis's clock, that keeps

- the bot's even spacing: any two sends of the whole fleet at least ``1/TELEGRAM_GLOBAL_RATE`` apart
  (bookings may lie in the future; a later caller fills a free gap before them);
- the chat's interval and the group's 20 per minute, whichever worker handles the chat;
- the pause a 429 set for the whole bot (``paused_until``, written by :meth:`SharedBudget.pause`).

A booking further away than the caller's ``max_wait`` books nothing (``ThrottleWait``). Every Redis
key is keyed by the bot id and expires once it can no longer matter. A worker books its sends together,
in the order they asked, in one call of the script: a booking waits up to ``BOOKING_LINGER`` for the
others that may ask at once (``gather``, the worker's sends in flight) and goes as soon as they have;
those asking while it is on its way go with the next call. At most one round trip per send, and one
per ``gather`` sends in a burst, for at most a few milliseconds on a send that waits tens of them for
its slot at the bot's rate anyway.

While Redis is unreachable the budget falls back to a local ``Throttle`` at ``TELEGRAM_FALLBACK_RATE``
(one WARNING line per outage, counted; the first local send waits a second, while the sends the fleet
booked before the outage leave), looks for Redis in the background (every 0.2 s after a refused
connection, every ``probe_every`` seconds after a timeout), and returns to the shared budget as soon as
it answers — sends already waiting for a local slot then book on the budget instead. Returning, it holds
the bot's shared sends for a second (a pause on the budget): the sends it paced locally, which the budget
does not know, leave Telegram's sliding second first.

A send woken more than one spacing after its slot (a busy event loop, a 429 pause) books a new slot
instead of leaving late, where it would bunch with the sends booked after it on any worker; departures
also pass a local window at the bot's rate.

Every wait is bounded: a 429's pause by ``BudgetLimits.max_pause`` (``TELEGRAM_MAX_RETRY_AFTER``), here
and in Redis; a send whose slot, or this worker's own pause, lies more than ``max_wait`` away is refused
(``ThrottleWait``), not held. The injected ``sleep`` may end a wait early when the worker stops
(``throttle.waking_on_stop``): the send is then refused the same way.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from redis.asyncio import Redis
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from agents.notifications.budget_policy import BudgetLimits, BudgetMode, BudgetStats, FallbackSwitch
from agents.notifications.budget_scripts import BOOK, PAUSE, STATE, budget_keys
from agents.notifications.throttle import GROUP_WINDOW, Departures, Throttle, ThrottleWait, leave
from streams.batching import Batcher

__all__ = ["SharedBudget"]

log = logging.getLogger(__name__)

#: Times a send woken too late for its slot books a new one before it leaves anyway.
MAX_REBOOKS = 3
#: Seconds a worker that loses Redis holds its first local send: the sliding second in which the sends booked
#: before the outage (by every worker) still leave.
OUTAGE_HOLD = 1.0

#: What counts as "Redis is unavailable": the budget falls back instead of failing the send.
REDIS_DOWN = (RedisError, OSError, TimeoutError)
#: Seconds a booking waits for the other sends that may ask at once, to go to Redis with them.
BOOKING_LINGER = 0.005


class SharedBudget:
    """The ``SendThrottle`` of ``TelegramClient`` for a fleet: one budget per bot, in Redis."""

    def __init__(
        self,
        redis: Redis,
        *,
        bot_id: str,
        limits: BudgetLimits,
        fallback: Throttle,
        probe_every: float = 5.0,
        gather: int = 1,
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self._redis = redis
        self._prober: asyncio.Task[None] | None = None
        self._book = redis.register_script(BOOK)
        self._pause = redis.register_script(PAUSE)
        self._state = redis.register_script(STATE)
        self._bot_id = bot_id
        self._sends_key, _, _, self._paused_key = budget_keys(bot_id, 0)
        self.limits = limits
        #: The arguments every booking starts with: the bot's spacing, the chat interval, the group window.
        self._book_args = [
            f"{1 / limits.global_per_second:.6f}",
            f"{limits.chat_interval:.6f}",
            f"{GROUP_WINDOW:.6f}",
            f"{limits.max_pause:.6f}",
        ]
        self._fallback = fallback
        self._switch = FallbackSwitch(probe_every)
        self._departures = Departures(limits.global_per_second)
        self._late_after = 1 / limits.global_per_second
        self._now = now
        self._sleep = sleep
        self._member = f"{uuid.uuid4().hex[:12]}:"
        self._booked = 0
        #: (chat id, max wait) -> (booked, seconds until the slot), one script call for the sends asking at once
        self._bookings: Batcher[tuple[int, float | None], tuple[bool, float]] = Batcher(
            self._book_batch, gather=gather, linger=BOOKING_LINGER
        )
        self._paused_until = -math.inf
        self.stats = BudgetStats()

    @property
    def mode(self) -> BudgetMode:
        return self._switch.mode

    async def acquire(self, chat_id: int, max_wait: float | None = None) -> float:
        """Book the bot's next slot for ``chat_id`` and wait for it; return the wait.

        Raises ``ThrottleWait`` if the slot (booking nothing), or the end of this worker's pause, is more than
        ``max_wait`` seconds away, or if the worker stops meanwhile.
        """
        started = self._now()
        rebooks, at_local_slot = 0, False
        while True:
            if self._switch.mode is BudgetMode.SHARED:
                try:
                    booked, wait = await self._bookings((chat_id, max_wait))
                except REDIS_DOWN as exc:
                    await self._redis_failed(exc)
                else:
                    if not booked:
                        self.stats.deferred += 1
                        raise ThrottleWait(wait)
                    if await self._wait_for_slot(wait, max_wait) or rebooks >= MAX_REBOOKS:
                        await leave(self._departures, self._now, self._sleep)
                        return self._now() - started
                    # Woken too late (a busy event loop, a pause): the slot has passed, and leaving now would
                    # bunch with the sends booked after it, on this worker or another. Book a new one.
                    rebooks += 1
                    self.stats.rebooked += 1
                    continue
            if at_local_slot:  # Redis is still down at the slot the local throttle gave: leave on it
                self.stats.fallback_sends += 1
                return self._now() - started
            with self._counting_wait():
                try:
                    await self._fallback.acquire(chat_id, max_wait)
                except ThrottleWait:
                    self.stats.deferred += 1
                    raise
            # Booked while Redis was down: if it is back by now (the prober noticed), the shared budget decides
            # instead (sends paced locally and sends on the budget must not add up past the bot's rate).
            at_local_slot = True

    async def _wait_for_slot(self, wait: float, max_wait: float | None) -> bool:
        """Sleep until the booked slot (and past a pause this worker met); True if woken on time.

        Raises ``ThrottleWait`` (the slot left unused) if that pause ends more than ``max_wait`` from now.
        """
        with self._counting_wait():
            due = self._now() + wait
            if wait > 0:
                await self._sleep(wait)
            # A slot booked before this worker met a 429 waits out that pause too, if it may wait that long.
            if (paused := self._paused_until - self._now()) > 0:
                if max_wait is not None and paused > max_wait:
                    self.stats.deferred += 1
                    raise ThrottleWait(paused)
                await self._sleep(paused)
            return self._now() - due <= self._late_after

    async def pause(self, seconds: float) -> None:
        """Hold every send of the bot, on every worker, for ``seconds`` (a 429's ``retry_after``; at most
        ``limits.max_pause``)."""
        seconds = self.limits.pause_for(seconds)
        self.stats.pauses += 1
        self._paused_until = max(self._paused_until, self._now() + seconds)
        await self._fallback.pause(seconds)  # holds this worker's sends should Redis fail meanwhile
        if self._switch.mode is BudgetMode.SHARED:
            try:
                await self._pause_bot(seconds)
            except REDIS_DOWN as exc:
                await self._redis_failed(exc)
        log.info("telegram budget: bot %s paused for %.1f s (429)", self._bot_id, seconds)

    async def describe(self) -> dict[str, object]:
        """The budget's state for the ``/notifications/`` view (never raises)."""
        shared: dict[str, object] = {"reachable": False}
        try:
            ahead, paused_for = await self._state(keys=[self._sends_key, self._paused_key])
            shared = {"reachable": True, "booked_ahead": int(ahead), "paused_for_s": round(float(paused_for), 3)}
        except REDIS_DOWN as exc:
            shared["error"] = type(exc).__name__
        return {
            "bot_id": self._bot_id,
            "mode": self.mode.value,
            "global_rate": self.limits.global_per_second,
            "chat_interval": self.limits.chat_interval,
            "group_per_minute": self.limits.group_per_minute,
            "fallback_rate": self._fallback.rate,
            "shared": shared,
            "worker": {
                "waiting": self.stats.waiting,
                "waits": self.stats.waits,
                "wait_seconds": round(self.stats.wait_seconds, 3),
                "deferred": self.stats.deferred,
                "rebooked": self.stats.rebooked,
                "pauses": self.stats.pauses,
                "fallbacks": self.stats.fallbacks,
                "fallback_sends": self.stats.fallback_sends,
                "redis_round_trips": self.stats.round_trips,
                "bookings": self.stats.bookings,
            },
        }

    async def _book_batch(self, requests: list[tuple[int, float | None]]) -> list[tuple[bool, float]]:
        """Book ``requests`` (chat id, max wait) in order, in one call of the script."""
        keys = [self._sends_key, self._paused_key]
        args: list[str | int] = [*self._book_args]
        for chat_id, max_wait in requests:
            self._booked += 1
            keys += budget_keys(self._bot_id, chat_id)[1:3]
            group_limit = self.limits.group_per_minute if chat_id < 0 else 0
            args += [group_limit, -1 if max_wait is None else f"{max_wait:.6f}", f"{self._member}{self._booked}"]
        self.stats.round_trips += 1
        self.stats.bookings += len(requests)
        answers = await self._book(keys=keys, args=args)
        return [(bool(int(answers[i])), max(0.0, float(answers[i + 1]))) for i in range(0, len(answers), 2)]

    async def _pause_bot(self, seconds: float) -> None:
        """Pause the bot's shared sends for ``seconds`` (longer pauses already set stay): one round trip."""
        self.stats.round_trips += 1
        await self._pause(keys=[self._paused_key], args=[f"{seconds:.6f}", f"{self.limits.max_pause:.6f}"])

    @contextmanager
    def _counting_wait(self) -> Iterator[None]:
        started = self._now()
        self.stats.waiting += 1
        try:
            yield
        finally:
            self.stats.waiting -= 1
            waited = self._now() - started
            if waited > 0:
                self.stats.waits += 1
                self.stats.wait_seconds += waited

    async def close(self) -> None:
        """Stop booking and looking for Redis (the worker stops)."""
        await self._bookings.close()
        if self._prober is not None:
            self._prober.cancel()
            await asyncio.gather(self._prober, return_exceptions=True)

    async def _redis_failed(self, exc: BaseException) -> None:
        """Go local: hold this worker's first local send a second (the bot's sends booked before the outage
        leave meanwhile), and look for Redis in the background until it answers."""
        if self._switch.failed(slow=isinstance(exc, TimeoutError | RedisTimeoutError)):
            self.stats.fallbacks += 1
            log.warning(
                "telegram budget: Redis unreachable (%s); this worker sends at most %g messages/s until it is back",
                type(exc).__name__,
                self._fallback.rate,
            )
            await self._fallback.pause(OUTAGE_HOLD)
        if self._prober is None or self._prober.done():
            self._prober = asyncio.ensure_future(self._look_for_redis())

    async def _look_for_redis(self) -> None:
        while self._switch.mode is BudgetMode.FALLBACK:
            try:
                await self._sleep(self._switch.interval)
            except ThrottleWait:  # the worker stops
                return
            # Connections opened before the outage are dead: drop them, or the probe fails on one.
            await self._redis.connection_pool.disconnect()
            try:
                # The probe is the hold itself: the sends paced locally are unknown to the budget, so the bot's
                # shared sends wait a second, until those have left Telegram's sliding second (the mirror of the
                # hold at the outage's start).
                await self._pause_bot(OUTAGE_HOLD)
            except REDIS_DOWN as exc:
                self._switch.failed(slow=isinstance(exc, TimeoutError | RedisTimeoutError))
            else:
                self._switch.succeeded()
                log.info("telegram budget: Redis is back; sending on the bot's shared budget again")
