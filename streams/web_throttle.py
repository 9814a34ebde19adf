"""Failed sign-in attempts by client address, counted for the whole fleet in Redis.

Each address has a counter ``{prefix}{address}`` that lives one window (``SET NX EX`` then ``INCR``): every
worker of the app counts into it and refuses an address past the limit (``streams.web_auth.FailureLimit``),
so spreading guesses over the workers gains nothing. While Redis fails, each worker counts in its own
process (``LocalFailures``) and tries Redis again after a few seconds; the two counts are merged by taking
the stricter. Never sees a guess: only addresses.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from streams.web_auth import FailureLimit, LocalFailures

__all__ = ["FailedAttempts"]

log = logging.getLogger(__name__)

_REDIS_FAILURES = (RedisError, OSError, asyncio.TimeoutError)


class FailedAttempts:
    """The fleet's failed attempts by address: Redis when it answers, this process's count when it does not."""

    def __init__(
        self,
        limit: FailureLimit,
        *,
        prefix: str,
        clock: Callable[[], float] = time.time,
        retry_redis_after: float = 5.0,
    ) -> None:
        self.limit = limit
        self.local = LocalFailures(limit)
        self._prefix = prefix
        self._clock = clock
        self._redis: Redis | None = None
        self._retry_redis_after = retry_redis_after
        self._redis_down_until = 0.0

    def __repr__(self) -> str:
        mode = "in-process" if self._redis is None else "redis"
        return f"FailedAttempts({self.limit.max_failures} per {self.limit.window:g}s, {mode})"

    def use(self, redis: Redis) -> None:
        """Count in ``redis`` from now on (bound by the wiring at worker start)."""
        self._redis = redis

    def _shared(self) -> Redis | None:
        return self._redis if self._redis is not None and self._clock() >= self._redis_down_until else None

    def _failed(self, exc: BaseException) -> None:
        if not self._redis_down_until:
            log.warning(
                "web: failed sign-in attempts counted by this worker alone: Redis unreachable (%s)",
                type(exc).__name__,
            )
        self._redis_down_until = self._clock() + self._retry_redis_after

    def _recovered(self) -> None:
        if self._redis_down_until:
            log.info("web: failed sign-in attempts counted in Redis again, for the whole fleet")
            self._redis_down_until = 0.0

    async def record(self, address: str) -> int:
        """Count one failed attempt of ``address``; how many it made in the current window."""
        now = self._clock()
        local = self.local.record(address, now)
        redis = self._shared()
        if redis is None:
            return local
        key = self._prefix + address
        try:
            async with redis.pipeline(transaction=True) as pipe:
                pipe.set(key, 0, ex=math.ceil(self.limit.window), nx=True)
                pipe.incr(key)
                _, shared = await pipe.execute()
        except _REDIS_FAILURES as exc:
            self._failed(exc)
            return local
        self._recovered()
        return max(int(shared), local)

    async def retry_after(self, address: str) -> float | None:
        """Seconds until ``address`` may try again; None when it is not refused."""
        local = self.local.retry_after(address, self._clock())
        redis = self._shared()
        if redis is None:
            return local
        key = self._prefix + address
        try:
            async with redis.pipeline(transaction=False) as pipe:
                pipe.get(key)
                pipe.pttl(key)
                count, ttl_ms = await pipe.execute()
        except _REDIS_FAILURES as exc:
            self._failed(exc)
            return local
        self._recovered()
        if count is None or not self.limit.refused(int(count)):
            return local
        shared = ttl_ms / 1000 if ttl_ms and ttl_ms > 0 else self.limit.window
        return max(shared, local or 0.0)
