"""Gemini key states shared by all workers through Redis: one hash per key fingerprint, atomic Lua.

``{prefix}{fingerprint}`` (``lunch:gemini:key:key-1a2b3c4d``; never the key itself) holds times in
milliseconds of Redis's own clock (``TIME``, so workers' clocks do not matter):

* ``blocked_until`` and ``parked`` (1: daily quota, 0: cooling): only ever lengthened,
  ``max(existing, now + delay)``, the flag going with the later block;
* ``disabled_until``: a rejected key, for the reporting pool's ``disable_for`` (3 h by default);
* ``tat``: the key's next paced slot (GCRA without burst) when ``key_rpm`` is set. Slots are
  ``PACE_HEADROOM`` (2 %) further apart than ``60 / key_rpm`` s: requests leave exactly spaced, but
  network jitter brings some closer at Google's end, and a quota counted over a sliding minute would
  then see one too many.

Each hash expires when the last of its times passes, and within ``MAX_STATE_TTL`` (a day) whatever a
report asked or an older worker wrote: no state outlives a day (a daily-quota park ends by then).
Answers come back as seconds from now, for the caller's monotonic clock. Every call is one round
trip, bounded by ``timeout``; Redis errors (``RedisError``, ``OSError``, ``TimeoutError``) propagate:
falling back is the caller's business.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from agents.recommendations.keypool import KeyView, Verdict

__all__ = ["DEFAULT_PREFIX", "MAX_STATE_TTL", "PACE_HEADROOM", "SharedKeyStates", "SharedPick", "state_ms"]

DEFAULT_PREFIX = "lunch:gemini:key:"
PACE_HEADROOM = 0.02
#: Seconds a key's shared state lives at most.
MAX_STATE_TTL = 86400.0
_MAX_STATE_MS = f"{MAX_STATE_TTL * 1000:.0f}"


def state_ms(seconds: float) -> int:
    """A report's ``seconds`` as the milliseconds the scripts take: within ``[0, MAX_STATE_TTL]`` (NaN: the most)."""
    if not seconds >= 0:
        return 0 if seconds < 0 else int(_MAX_STATE_MS)
    return math.ceil(min(seconds, MAX_STATE_TTL) * 1000)


# KEYS: every key's hash, in pool order. ARGV[1]: pace interval in ms (0: off); ARGV[2..]: the pool
# indexes (1-based) the caller may use now, in round-robin order. Takes the first of those neither
# blocked, disabled nor before its paced slot, and moves that slot on. Returns {taken index or 0,
# now, then per key: ms blocked, parked (0/1), ms disabled, ms until its paced slot}.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local last = now + MAX_STATE_MS
local keys = {}
for i, name in ipairs(KEYS) do
  local f = redis.call('HMGET', name, 'blocked_until', 'parked', 'disabled_until', 'tat')
  if redis.call('PTTL', name) > MAX_STATE_MS then redis.call('PEXPIREAT', name, last) end
  keys[i] = {tonumber(f[1]) or 0, tonumber(f[2]) or 0, tonumber(f[3]) or 0, tonumber(f[4]) or 0}
end
local taken = 0
for j = 2, #ARGV do
  local i = tonumber(ARGV[j])
  local k = keys[i]
  if k[1] <= now and k[3] <= now and k[4] <= now then
    taken = i
    if interval > 0 then
      k[4] = now + interval
      redis.call('HSET', KEYS[i], 'tat', k[4])
      redis.call('PEXPIREAT', KEYS[i], math.min(math.max(k[1], k[3], k[4]), last))
    end
    break
  end
end
local reply = {taken, now}
for _, k in ipairs(keys) do
  local blocked = math.max(0, k[1] - now)
  table.insert(reply, blocked)
  table.insert(reply, blocked > 0 and k[2] or 0)
  table.insert(reply, math.max(0, k[3] - now))
  table.insert(reply, math.max(0, k[4] - now))
end
return reply
""".replace("MAX_STATE_MS", _MAX_STATE_MS)

# KEYS[1]: one key's hash. ARGV[1]: cooling, parked or disabled; ARGV[2]: for how many ms.
# Returns now.
_REPORT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local till = now + math.min(tonumber(ARGV[2]), MAX_STATE_MS)
local f = redis.call('HMGET', KEYS[1], 'blocked_until', 'disabled_until', 'tat')
local blocked, disabled, tat = tonumber(f[1]) or 0, tonumber(f[2]) or 0, tonumber(f[3]) or 0
if ARGV[1] == 'disabled' then
  if till > disabled then
    disabled = till
    redis.call('HSET', KEYS[1], 'disabled_until', till)
  end
elseif till >= blocked then
  blocked = till
  redis.call('HSET', KEYS[1], 'blocked_until', till, 'parked', ARGV[1] == 'parked' and 1 or 0)
end
redis.call('PEXPIREAT', KEYS[1], math.min(math.max(blocked, disabled, tat), now + MAX_STATE_MS))
return now
""".replace("MAX_STATE_MS", _MAX_STATE_MS)


@dataclass(frozen=True)
class SharedPick:
    """An acquire's answer: the taken key's index (None: none usable now), every key's view, Redis's time."""

    index: int | None
    views: tuple[KeyView, ...]
    server_time: float  # UNIX seconds


class SharedKeyStates:
    """The key states of all workers in Redis; ``key_rpm`` > 0 paces each key to that many requests a minute."""

    def __init__(
        self, redis: Redis, *, prefix: str = DEFAULT_PREFIX, key_rpm: float = 0.0, timeout: float = 0.5
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._interval_ms = math.ceil(60_000 * (1 + PACE_HEADROOM) / key_rpm) if key_rpm > 0 else 0
        self._timeout = timeout
        self._acquire = redis.register_script(_ACQUIRE)
        self._report = redis.register_script(_REPORT)

    def __repr__(self) -> str:
        return f"SharedKeyStates(prefix={self._prefix!r}, pace_ms={self._interval_ms})"

    async def acquire(self, fingerprints: Sequence[str], candidates: Sequence[int]) -> SharedPick:
        """Take the first of ``candidates`` (pool indexes, in order) usable for all workers; see every key."""
        keys = [self._prefix + fp for fp in fingerprints]
        async with asyncio.timeout(self._timeout):
            reply = await self._acquire(keys=keys, args=[self._interval_ms, *(i + 1 for i in candidates)])
        taken, now, *flat = (int(x) for x in reply)
        views = tuple(
            KeyView(
                blocked_for=flat[j] / 1000,
                parked=bool(flat[j + 1]),
                disabled_for=flat[j + 2] / 1000,
                paced_for=flat[j + 3] / 1000,
            )
            for j in range(0, len(flat), 4)
        )
        return SharedPick(taken - 1 if taken else None, views, now / 1000)

    async def peek(self, fingerprints: Sequence[str]) -> tuple[float, tuple[KeyView, ...]]:
        """Every key's shared state without taking one: Redis's UNIX time, and the views from then."""
        async with asyncio.timeout(self._timeout), self._redis.pipeline(transaction=False) as pipe:
            pipe.time()
            for fp in fingerprints:
                pipe.hmget(self._prefix + fp, "blocked_until", "parked", "disabled_until", "tat")
            (seconds, micros), *states = await pipe.execute()
        now = seconds * 1000 + micros // 1000
        views = []
        for fields in states:
            blocked, parked, disabled, tat = (int(value or 0) for value in fields)
            views.append(
                KeyView(
                    blocked_for=max(0, blocked - now) / 1000,
                    parked=bool(parked) and blocked > now,
                    disabled_for=max(0, disabled - now) / 1000,
                    paced_for=max(0, tat - now) / 1000,
                )
            )
        return now / 1000, tuple(views)

    async def report(self, verdict: Verdict) -> float:
        """Share what a report taught (a block only lengthens); returns Redis's UNIX time."""
        async with asyncio.timeout(self._timeout):
            now = await self._report(
                keys=[self._prefix + verdict.fingerprint], args=[verdict.state.value, state_ms(verdict.seconds)]
            )
        return int(now) / 1000
