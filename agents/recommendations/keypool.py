"""Which Gemini API key to use next: a pure policy over per-key state, with an injectable clock.

Each key is ``ready``, ``cooling`` (per-minute limit or server errors, until a time), ``parked``
(daily quota, until the next midnight in America/Los_Angeles, when Google resets it) or ``disabled``
(rejected as invalid, for ``disable_for`` seconds: a key its owner fixed is tried again). A ready key
may also wait for its next paced slot. Keys are known by index; only :func:`key_fingerprint` labels
leave this module.

What this process learns leaves as the :class:`Verdict` each blocking report returns (to share with
other workers); what others learnt comes in through :meth:`KeyPool.observe` as a :class:`KeyView`.

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

from streams.redaction import key_fingerprint

__all__ = [
    "DISABLE_FOR",
    "QUOTA_ZONE",
    "KeyLease",
    "KeyPool",
    "KeyState",
    "KeyView",
    "Verdict",
    "next_quota_reset",
]

log = logging.getLogger(__name__)

QUOTA_ZONE = ZoneInfo("America/Los_Angeles")
DISABLE_FOR = 3 * 3600.0  # seconds a rejected key stays disabled


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


@dataclass(frozen=True)
class Verdict:
    """What a report taught about a key: it is ``state`` (cooling, parked, disabled) for ``seconds``."""

    fingerprint: str
    state: KeyState
    seconds: float


@dataclass(frozen=True)
class KeyView:
    """Another source's view of one key, in seconds from now (0: not so)."""

    blocked_for: float = 0.0
    parked: bool = False  # the block is a daily-quota park, not a cooldown
    disabled_for: float = 0.0
    paced_for: float = 0.0  # until its next paced slot

    def state(self) -> tuple[KeyState, float]:
        """What the view says the key is, and for how many more seconds (0.0: ready)."""
        if self.disabled_for > 0:
            return KeyState.DISABLED, self.disabled_for
        if self.blocked_for > 0:
            return (KeyState.PARKED if self.parked else KeyState.COOLING), self.blocked_for
        return KeyState.READY, 0.0


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
    disabled_until: float = 0.0
    paced_until: float = 0.0
    in_flight: int = 0
    server_streak: int = 0
    ok: int = 0
    rate_limited: int = 0
    errors: int = 0


class KeyPool:
    """Round-robin over usable keys; callers report each lease's outcome exactly once.

    ``now`` is a monotonic clock for every time the pool keeps; UNIX time is given to
    :meth:`report_daily_quota` only, to find the next Pacific midnight.
    """

    def __init__(
        self,
        keys: Sequence[str],
        *,
        now: Callable[[], float] = time.monotonic,
        max_in_flight: int | None = None,
        server_backoff_base: float = 1.0,
        server_backoff_max: float = 60.0,
        park_slack: float = 60.0,
        disable_for: float = DISABLE_FOR,
    ) -> None:
        if not keys:
            raise ValueError("at least one API key is needed")
        if len(set(keys)) != len(keys):
            raise ValueError("duplicate API keys")
        self._keys = [_Key(key_fingerprint(k)) for k in keys]
        self._now = now
        self._max_in_flight = max_in_flight
        self._backoff_base = server_backoff_base
        self._backoff_max = server_backoff_max
        self._park_slack = park_slack
        self._disable_for = disable_for
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
        if key.disabled_until > now:
            return KeyState.DISABLED
        if key.blocked_until > now:
            return KeyState.PARKED if key.parked else KeyState.COOLING
        return KeyState.READY

    def _usable(self, key: _Key, now: float) -> bool:
        room = self._max_in_flight is None or key.in_flight < self._max_in_flight
        return room and key.paced_until <= now and self._state(key, now) is KeyState.READY

    def candidates(self) -> list[int]:
        """Indexes of the keys usable now (ready, paced slot due, room), in round-robin order."""
        now = self._now()
        n = len(self._keys)
        order = [(self._cursor + step) % n for step in range(n)]
        return [index for index in order if self._usable(self._keys[index], now)]

    def take(self, index: int) -> KeyLease:
        """Lease key ``index`` (one of :meth:`candidates`) and move the round robin past it."""
        key = self._keys[index]
        self._cursor = (index + 1) % len(self._keys)
        key.in_flight += 1
        return KeyLease(index, key.fingerprint)

    def acquire(self) -> KeyLease | None:
        """The next usable key, round-robin; None when no key is usable right now."""
        found = self.candidates()
        return self.take(found[0]) if found else None

    def observe(self, index: int, view: KeyView) -> None:
        """Merge another source's view of key ``index``; what is known only ever lengthens."""
        key = self._keys[index]
        now = self._now()
        self._block(key, view.blocked_for, parked=view.parked)
        key.disabled_until = max(key.disabled_until, now + view.disabled_for)
        key.paced_until = max(key.paced_until, now + view.paced_for)

    def _wait(self, key: _Key, now: float) -> float:
        return max(0.0, key.blocked_until - now, key.disabled_until - now, key.paced_until - now)

    def next_ready_in(self) -> float | None:
        """Seconds until some key is usable (0.0: one is usable now, maybe busy); None if all are disabled."""
        now = self._now()
        waits = [self._wait(k, now) for k in self._keys if self._state(k, now) is not KeyState.DISABLED]
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

    def report_rate_limited(self, lease: KeyLease, retry_delay: float) -> Verdict:
        """Per-minute limit: cool the key down for ``retry_delay`` seconds."""
        key = self._release(lease)
        key.rate_limited += 1
        log.info("Gemini %s rate-limited, cooling %.1f s", key.fingerprint, retry_delay)
        return self._block(key, max(0.0, retry_delay), parked=False)

    def report_daily_quota(self, lease: KeyLease, wall: float) -> Verdict:
        """Daily quota spent at UNIX time ``wall``: park the key until the next midnight Pacific (plus slack)."""
        key = self._release(lease)
        key.rate_limited += 1
        delay = next_quota_reset(wall) - wall + self._park_slack
        log.warning("Gemini %s daily quota spent, parked %.0f s (Pacific midnight)", key.fingerprint, delay)
        return self._block(key, delay, parked=True)

    def report_invalid(self, lease: KeyLease) -> Verdict:
        """The key was rejected (invalid, revoked, no permission): disable it for ``disable_for`` seconds."""
        key = self._release(lease)
        key.errors += 1
        key.disabled_until = max(key.disabled_until, self._now() + self._disable_for)
        log.error("Gemini %s rejected as invalid: disabled for %.0f s", key.fingerprint, self._disable_for)
        return Verdict(key.fingerprint, KeyState.DISABLED, self._disable_for)

    def report_server_error(self, lease: KeyLease) -> Verdict:
        """5xx or transport failure: short cooldown, doubling with each consecutive failure."""
        key = self._release(lease)
        key.errors += 1
        key.server_streak += 1
        delay = min(self._backoff_max, self._backoff_base * 2 ** (key.server_streak - 1))
        log.info("Gemini %s server error #%d, cooling %.1f s", key.fingerprint, key.server_streak, delay)
        return self._block(key, delay, parked=False)

    def _block(self, key: _Key, delay: float, *, parked: bool) -> Verdict:
        until = self._now() + delay
        if until >= key.blocked_until:
            key.blocked_until = until
            key.parked = parked
        return Verdict(key.fingerprint, KeyState.PARKED if parked else KeyState.COOLING, delay)

    def snapshot(self) -> dict[str, dict[str, int | float | str]]:
        """Per-key metrics: fingerprint -> ok, rate_limited, errors, in_flight, state, ready_in (seconds)."""
        now = self._now()
        return {
            k.fingerprint: {
                "ok": k.ok,
                "rate_limited": k.rate_limited,
                "errors": k.errors,
                "in_flight": k.in_flight,
                "state": self._state(k, now).value,
                "ready_in": self._wait(k, now),
            }
            for k in self._keys
        }
