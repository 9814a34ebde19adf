"""The bot's send budget, shared by every worker that sends as one bot, through Redis.

Telegram's limits belong to the bot, not to a process: about 30 messages/s in all, 20 per minute
in one group, one per second in one chat. Each send books its slot with one Lua script (one round
trip): the earliest time, on Redis's clock, that keeps

- the bot's even spacing: any two sends of the whole fleet at least ``1/TELEGRAM_GLOBAL_RATE`` apart
  (bookings may lie in the future; a later caller fills a free gap before them);
- the chat's interval and the group's 20 per minute, whichever worker handles the chat;
- the pause a 429 set for the whole bot (``paused_until``, written by :meth:`SharedBudget.pause`).

A booking further away than the caller's ``max_wait`` books nothing (``ThrottleWait``). Every Redis
key is keyed by the bot id and expires once it can no longer matter.

While Redis is unreachable the budget falls back to a local ``Throttle`` at ``TELEGRAM_FALLBACK_RATE``
(one WARNING line per outage, counted), tries Redis again every ``probe_every`` seconds, and returns
to the shared budget as soon as it answers. A send woken more than one spacing after its slot (a
busy event loop, a 429 pause) books a new slot instead of leaving late, where it would bunch with the
sends booked after it on any worker; departures also pass a local window at the bot's rate.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum

from redis.asyncio import Redis
from redis.exceptions import RedisError

from agents.notifications.budget_scripts import BOOK, PAUSE, STATE, budget_keys
from agents.notifications.throttle import GROUP_WINDOW, Departures, Throttle, ThrottleWait, leave

__all__ = ["BudgetLimits", "BudgetMode", "BudgetStats", "FallbackSwitch", "SharedBudget"]

log = logging.getLogger(__name__)

#: Times a send woken too late for its slot books a new one before it leaves anyway.
MAX_REBOOKS = 3

#: What counts as "Redis is unavailable": the budget falls back instead of failing the send.
REDIS_DOWN = (RedisError, OSError, TimeoutError)


@dataclass(frozen=True, slots=True)
class BudgetLimits:
    """The bot's limits: sends per second in all, seconds between two sends to a chat, sends per minute to a group."""

    global_per_second: float
    chat_interval: float
    group_per_minute: int

    def __post_init__(self) -> None:
        if self.global_per_second <= 0 or self.group_per_minute < 1 or self.chat_interval < 0:
            raise ValueError("rates must be positive")


class BudgetMode(StrEnum):
    SHARED = "shared"
    FALLBACK = "fallback"


@dataclass(slots=True)
class FallbackSwitch:
    """When to use Redis: always while it answers; after a failure, one probe every ``probe_every`` seconds."""

    probe_every: float
    mode: BudgetMode = BudgetMode.SHARED
    next_probe: float = -math.inf

    def use_shared(self, now: float) -> bool:
        """True if this send should try Redis (in fallback, only the first caller after each probe interval)."""
        if self.mode is BudgetMode.SHARED:
            return True
        if now >= self.next_probe:
            self.next_probe = now + self.probe_every
            return True
        return False

    def failed(self, now: float) -> bool:
        """Redis failed; True if this starts an outage."""
        started = self.mode is BudgetMode.SHARED
        self.mode = BudgetMode.FALLBACK
        self.next_probe = now + self.probe_every
        return started

    def succeeded(self) -> bool:
        """Redis answered; True if this ends an outage."""
        ended = self.mode is BudgetMode.FALLBACK
        self.mode = BudgetMode.SHARED
        return ended


@dataclass(slots=True)
class BudgetStats:
    """This worker's counters of the budget, for metrics and the ``/notifications/`` view."""

    waiting: int = 0  # sends waiting for their slot now
    waits: int = 0  # sends that had to wait
    wait_seconds: float = 0.0  # total time sends spent waiting
    deferred: int = 0  # sends refused because their slot was further than max_wait
    rebooked: int = 0  # sends woken later than one spacing after their slot, booked again
    pauses: int = 0  # 429s that paused the bot
    fallbacks: int = 0  # Redis outages that sent this worker to its local fallback rate
    fallback_sends: int = 0  # sends paced locally during those outages
    round_trips: int = 0  # Redis calls made by the budget


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
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self._book = redis.register_script(BOOK)
        self._pause = redis.register_script(PAUSE)
        self._state = redis.register_script(STATE)
        self._bot_id = bot_id
        self.limits = limits
        self._fallback = fallback
        self._switch = FallbackSwitch(probe_every)
        self._departures = Departures(limits.global_per_second)
        self._late_after = 1 / limits.global_per_second
        self._now = now
        self._sleep = sleep
        self._member = f"{uuid.uuid4().hex[:12]}:"
        self._booked = 0
        self._paused_until = -math.inf
        self.stats = BudgetStats()

    @property
    def mode(self) -> BudgetMode:
        return self._switch.mode

    async def acquire(self, chat_id: int, max_wait: float | None = None) -> float:
        """Book the bot's next slot for ``chat_id`` and wait for it; return the wait.

        Raises ``ThrottleWait`` (booking nothing) if the slot is more than ``max_wait`` seconds away.
        """
        started = self._now()
        for _ in range(MAX_REBOOKS + 1):
            if not self._switch.use_shared(self._now()):
                break
            try:
                booked, wait = await self._book_slot(chat_id, max_wait)
            except REDIS_DOWN as exc:
                self._redis_failed(exc)
                break
            self._redis_answered()
            if not booked:
                self.stats.deferred += 1
                raise ThrottleWait(wait)
            with self._counting_wait():
                due = self._now() + wait
                if wait > 0:
                    await self._sleep(wait)
                # A slot booked before this worker met a 429 waits out that pause too.
                if (paused := self._paused_until - self._now()) > 0:
                    await self._sleep(paused)
                if self._now() - due <= self._late_after:
                    await leave(self._departures, self._now, self._sleep)
                    return self._now() - started
            # Woken too late (a busy event loop, a pause): the slot has passed, and leaving now would bunch
            # with the sends booked after it, on this worker or another. Book a new one.
            self.stats.rebooked += 1
        else:
            await leave(self._departures, self._now, self._sleep)
            return self._now() - started
        self.stats.fallback_sends += 1
        with self._counting_wait():
            try:
                return await self._fallback.acquire(chat_id, max_wait)
            except ThrottleWait:
                self.stats.deferred += 1
                raise

    async def pause(self, seconds: float) -> None:
        """Hold every send of the bot, on every worker, for ``seconds`` (a 429's ``retry_after``)."""
        self.stats.pauses += 1
        self._paused_until = max(self._paused_until, self._now() + seconds)
        await self._fallback.pause(seconds)  # holds this worker's sends should Redis fail meanwhile
        if self._switch.mode is BudgetMode.SHARED:
            self.stats.round_trips += 1
            try:
                await self._pause(keys=[budget_keys(self._bot_id, 0)[3]], args=[f"{seconds:.6f}"])
            except REDIS_DOWN as exc:
                self._redis_failed(exc)
        log.info("telegram budget: bot %s paused for %.1f s (429)", self._bot_id, seconds)

    async def describe(self) -> dict[str, object]:
        """The budget's state for the ``/notifications/`` view (never raises)."""
        shared: dict[str, object] = {"reachable": False}
        sends, _, _, paused = budget_keys(self._bot_id, 0)
        try:
            ahead, paused_for = await self._state(keys=[sends, paused])
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
            },
        }

    async def _book_slot(self, chat_id: int, max_wait: float | None) -> tuple[bool, float]:
        self._booked += 1
        self.stats.round_trips += 1
        group_limit = self.limits.group_per_minute if chat_id < 0 else 0
        booked, wait = await self._book(
            keys=budget_keys(self._bot_id, chat_id),
            args=[
                f"{1 / self.limits.global_per_second:.6f}",
                f"{self.limits.chat_interval:.6f}",
                group_limit,
                f"{GROUP_WINDOW:.6f}",
                -1 if max_wait is None else f"{max_wait:.6f}",
                f"{self._member}{self._booked}",
            ],
        )
        return bool(int(booked)), max(0.0, float(wait))

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

    def _redis_failed(self, exc: BaseException) -> None:
        if self._switch.failed(self._now()):
            self.stats.fallbacks += 1
            log.warning(
                "telegram budget: Redis unreachable (%s); this worker sends at most %g messages/s until it is back",
                type(exc).__name__,
                self._fallback.rate,
            )

    def _redis_answered(self) -> None:
        if self._switch.succeeded():
            log.info("telegram budget: Redis is back; sending on the bot's shared budget again")
