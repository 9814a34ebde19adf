"""Which Gemini API key to use next: a pure policy over per-key state, with injectable clocks.

Each key is ``ready``, ``cooling`` (per-minute limit or server errors, until a time), ``parked``
(daily quota, until the next midnight in America/Los_Angeles, when Google resets it) or ``disabled``
(rejected as invalid). Keys are known by index; only :func:`key_fingerprint` labels leave this module.

Note that Gemini quota belongs to a Google Cloud project, not to a key: keys of one project share it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from streams.settings import key_fingerprint

__all__ = [
    "QUOTA_ZONE",
    "AllKeysExhausted",
    "KeyLease",
    "KeyPool",
    "KeyState",
    "next_quota_reset",
]

log = logging.getLogger(__name__)

QUOTA_ZONE = ZoneInfo("America/Los_Angeles")


class AllKeysExhausted(Exception):
    """No key is usable now or within the caller's bound (all disabled, or parked/cooling too long)."""

    def __init__(self, message: str, *, ready_in: float | None = None) -> None:
        super().__init__(message)
        self.ready_in = ready_in  # seconds until a key is usable again; None: never (all disabled)


class KeyState(StrEnum):
    READY = "ready"
    COOLING = "cooling"
    PARKED = "parked"
    DISABLED = "disabled"


def next_quota_reset(wall: float, zone: ZoneInfo = QUOTA_ZONE) -> float:
    """The UNIX time of the first midnight in ``zone`` strictly after UNIX time ``wall`` (DST-aware)."""
    local = datetime.fromtimestamp(wall, zone)
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    return midnight.timestamp()


@dataclass(eq=False)
class KeyLease:
    """One use of one key, handed out by :meth:`KeyPool.acquire` and given back by a ``report_*``."""

    index: int
    fingerprint: str
    active: bool = True

    def __repr__(self) -> str:
        return f"KeyLease({self.fingerprint}, active={self.active})"


@dataclass(eq=False)
class _Key:
    fingerprint: str
    blocked_until: float = 0.0
    parked: bool = False
    disabled: bool = False
    in_flight: int = 0
    server_streak: int = 0
    ok: int = 0
    rate_limited: int = 0
    errors: int = 0


class KeyPool:
    """Round-robin over usable keys; callers report each lease's outcome exactly once.

    ``now`` is a monotonic clock for cooldowns; ``wall`` gives UNIX time, used only to find the next
    Pacific midnight when a key's daily quota runs out.
    """

    def __init__(
        self,
        keys: Sequence[str],
        *,
        now: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        max_in_flight: int | None = None,
        server_backoff_base: float = 1.0,
        server_backoff_max: float = 60.0,
        park_slack: float = 60.0,
    ) -> None:
        if not keys:
            raise ValueError("at least one API key is needed")
        if len(set(keys)) != len(keys):
            raise ValueError("duplicate API keys")
        self._keys = [_Key(key_fingerprint(k)) for k in keys]
        self._now = now
        self._wall = wall
        self._max_in_flight = max_in_flight
        self._backoff_base = server_backoff_base
        self._backoff_max = server_backoff_max
        self._park_slack = park_slack
        self._cursor = 0

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        states = ", ".join(f"{k.fingerprint}={self._state(k, self._now()).value}" for k in self._keys)
        return f"KeyPool({states})"

    @property
    def fingerprints(self) -> list[str]:
        return [k.fingerprint for k in self._keys]

    def _state(self, key: _Key, now: float) -> KeyState:
        if key.disabled:
            return KeyState.DISABLED
        if key.blocked_until > now:
            return KeyState.PARKED if key.parked else KeyState.COOLING
        return KeyState.READY

    def _has_room(self, key: _Key) -> bool:
        return self._max_in_flight is None or key.in_flight < self._max_in_flight

    def acquire(self) -> KeyLease | None:
        """The next ready key with room, round-robin; None when no key is usable right now."""
        now = self._now()
        n = len(self._keys)
        for step in range(n):
            index = (self._cursor + step) % n
            key = self._keys[index]
            if self._state(key, now) is KeyState.READY and self._has_room(key):
                self._cursor = (index + 1) % n
                key.in_flight += 1
                return KeyLease(index, key.fingerprint)
        return None

    def next_ready_in(self) -> float | None:
        """Seconds until some key is ready (0.0: one is ready now, maybe busy); None if all are disabled."""
        now = self._now()
        waits = [max(0.0, k.blocked_until - now) for k in self._keys if not k.disabled]
        return min(waits) if waits else None

    def state(self, index: int) -> KeyState:
        return self._state(self._keys[index], self._now())

    def _release(self, lease: KeyLease) -> _Key:
        if not lease.active:
            raise RuntimeError(f"{lease!r} was already reported")
        lease.active = False
        key = self._keys[lease.index]
        key.in_flight -= 1
        return key

    def release(self, lease: KeyLease) -> None:
        """Give a lease back without judging the key (cancelled, or the request itself was at fault)."""
        self._release(lease)

    def report_success(self, lease: KeyLease) -> None:
        key = self._release(lease)
        key.ok += 1
        key.server_streak = 0

    def report_rate_limited(self, lease: KeyLease, retry_delay: float) -> None:
        """Per-minute limit: cool the key down for ``retry_delay`` seconds."""
        key = self._release(lease)
        key.rate_limited += 1
        self._block(key, max(0.0, retry_delay), parked=False)
        log.info("Gemini %s rate-limited, cooling %.1f s", key.fingerprint, retry_delay)

    def report_daily_quota(self, lease: KeyLease) -> None:
        """Daily quota spent: park the key until the next midnight Pacific (plus a little slack)."""
        key = self._release(lease)
        key.rate_limited += 1
        wall = self._wall()
        delay = next_quota_reset(wall) - wall + self._park_slack
        self._block(key, delay, parked=True)
        log.warning("Gemini %s daily quota spent, parked %.0f s (Pacific midnight)", key.fingerprint, delay)

    def report_invalid(self, lease: KeyLease) -> None:
        """The key was rejected (invalid, revoked, no permission): never use it again."""
        key = self._release(lease)
        key.errors += 1
        key.disabled = True
        log.error("Gemini %s rejected as invalid: disabled", key.fingerprint)

    def report_server_error(self, lease: KeyLease) -> None:
        """5xx or transport failure: short cooldown, doubling with each consecutive failure."""
        key = self._release(lease)
        key.errors += 1
        key.server_streak += 1
        delay = min(self._backoff_max, self._backoff_base * 2 ** (key.server_streak - 1))
        self._block(key, delay, parked=False)
        log.info("Gemini %s server error #%d, cooling %.1f s", key.fingerprint, key.server_streak, delay)

    def _block(self, key: _Key, delay: float, *, parked: bool) -> None:
        until = self._now() + delay
        if until >= key.blocked_until:
            key.blocked_until = until
            key.parked = parked

    def snapshot(self) -> dict[str, dict[str, int | float | str]]:
        """Per-key metrics: fingerprint -> ok, rate_limited, errors, in_flight, state, ready_in."""
        now = self._now()
        return {
            k.fingerprint: {
                "ok": k.ok,
                "rate_limited": k.rate_limited,
                "errors": k.errors,
                "in_flight": k.in_flight,
                "state": self._state(k, now).value,
                "ready_in": 0.0 if k.disabled else max(0.0, k.blocked_until - now),
            }
            for k in self._keys
        }
