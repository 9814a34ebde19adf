"""Leases Gemini keys from this process's :class:`KeyPool`, in step with all workers through Redis.

With shared states, each acquire is one round trip: Redis takes the first of the pool's usable keys
that no worker knows to be blocked, disabled or before its paced slot, and returns every key's
shared state, which the pool merges. Each report that blocks a key is written there as well.

When Redis fails, the pool goes on alone on what it knows (today's per-process behaviour, no
pacing): logged once at WARNING, each lease so made counted in :attr:`KeyBroker.fallbacks`. Redis is
tried again at most every ``retry_after`` seconds; its return is logged once at INFO. A Redis error
never fails a request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from redis.exceptions import RedisError

from agents.recommendations.keypool import KeyLease, KeyPool, Verdict
from agents.recommendations.shared_keys import SharedKeyStates

__all__ = ["SHARED_ERRORS", "KeyBroker", "Outage"]

log = logging.getLogger(__name__)

SHARED_ERRORS = (RedisError, OSError, TimeoutError)


class Outage:
    """Whether to try the shared states now: always while they work, every ``retry_after`` s once they fail."""

    def __init__(self, now: Callable[[], float], retry_after: float) -> None:
        self._now = now
        self._retry_after = retry_after
        self._retry_at: float | None = None

    @property
    def down(self) -> bool:
        return self._retry_at is not None

    def due(self) -> bool:
        return self._retry_at is None or self._now() >= self._retry_at

    def failed(self) -> bool:
        """Record a failure; True when they worked until now (worth one warning)."""
        was_up = self._retry_at is None
        self._retry_at = self._now() + self._retry_after
        return was_up

    def succeeded(self) -> bool:
        """Record a success; True when they had failed until now (worth one notice)."""
        was_down = self._retry_at is not None
        self._retry_at = None
        return was_down


class KeyBroker:
    """Hands out key leases; ``shared`` None keeps every state in this process alone."""

    def __init__(
        self,
        pool: KeyPool,
        shared: SharedKeyStates | None,
        *,
        now: Callable[[], float],
        wall: Callable[[], float],
        retry_after: float = 5.0,
    ) -> None:
        self.pool = pool
        self._shared = shared
        self._outage = Outage(now, retry_after)
        self._wall = wall
        self._skew = 0.0  # Redis's clock minus ours, from its last answer
        self._lock = asyncio.Lock()  # one shared acquire at a time: the pool's view stays current
        self.fallbacks = 0  # leases made without the shared states because Redis failed

    def __repr__(self) -> str:
        mode = "local" if self._shared is None else ("local (Redis down)" if self._outage.down else "shared")
        return f"KeyBroker({mode}, {self.pool!r})"

    async def acquire(self) -> KeyLease | None:
        """A lease on the next key usable now, shared when Redis answers; None when no key is usable now."""
        if self._shared is not None:
            async with self._lock:
                if self._outage.due():
                    try:
                        pick = await self._shared.acquire(self.pool.fingerprints, self.pool.candidates())
                    except SHARED_ERRORS as exc:
                        self._failed(exc)
                    else:
                        self._answered(pick.server_time)
                        for index, view in enumerate(pick.views):
                            self.pool.observe(index, view)
                        return None if pick.index is None else self.pool.take(pick.index)
        lease = self.pool.acquire()
        if lease is not None and self._shared is not None:
            self.fallbacks += 1
        return lease

    def release(self, lease: KeyLease) -> None:
        self.pool.release(lease)

    def report_success(self, lease: KeyLease) -> None:
        self.pool.report_success(lease)

    async def report_rate_limited(self, lease: KeyLease, retry_delay: float) -> None:
        await self._share(self.pool.report_rate_limited(lease, retry_delay))

    async def report_daily_quota(self, lease: KeyLease) -> None:
        """Parks until the next Pacific midnight by Redis's clock (ours until Redis has answered)."""
        await self._share(self.pool.report_daily_quota(lease, self._wall() + self._skew))

    async def report_invalid(self, lease: KeyLease) -> None:
        await self._share(self.pool.report_invalid(lease))

    async def report_server_error(self, lease: KeyLease) -> None:
        await self._share(self.pool.report_server_error(lease))

    async def _share(self, verdict: Verdict) -> None:
        if self._shared is None or not self._outage.due():
            return
        try:
            server_time = await self._shared.report(verdict)
        except SHARED_ERRORS as exc:
            self._failed(exc)
        else:
            self._answered(server_time)

    def _answered(self, server_time: float) -> None:
        self._skew = server_time - self._wall()
        if self._outage.succeeded():
            log.info("Redis is back: Gemini key states are shared by all workers again")

    def _failed(self, exc: BaseException) -> None:
        if self._outage.failed():
            why = f"{type(exc).__name__}: {str(exc)[:200]}" if str(exc) else type(exc).__name__
            log.warning("Redis failed (%s): Gemini key states are this worker's own until it is back", why)
