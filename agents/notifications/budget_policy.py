"""The pure parts of the bot's shared budget (``shared_budget``): its limits, its mode, its counters."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = ["MAX_KEY_TTL", "BudgetLimits", "BudgetMode", "BudgetStats", "FallbackSwitch"]

#: Seconds a key of the budget lives at most, whatever it holds: nothing in it can matter longer.
MAX_KEY_TTL: Final = 86400.0


@dataclass(frozen=True, slots=True)
class BudgetLimits:
    """The bot's limits: sends per second in all, seconds between two sends to a chat, sends per minute to a group,
    and the longest pause a 429 may set (``TELEGRAM_MAX_RETRY_AFTER``, at most ``MAX_KEY_TTL``)."""

    global_per_second: float
    chat_interval: float
    group_per_minute: int
    max_pause: float = 3600.0

    def __post_init__(self) -> None:
        if self.global_per_second <= 0 or self.group_per_minute < 1 or self.chat_interval < 0:
            raise ValueError("rates must be positive")
        if not 0 < self.max_pause <= MAX_KEY_TTL:
            raise ValueError(f"max_pause must be in (0, {MAX_KEY_TTL:g}] seconds")

    def pause_for(self, seconds: float) -> float:
        """The pause the bot takes for a 429 asking ``seconds``: within ``[0, max_pause]`` (NaN: ``max_pause``)."""
        return self.max_pause if math.isnan(seconds) else min(max(seconds, 0.0), self.max_pause)


class BudgetMode(StrEnum):
    SHARED = "shared"
    FALLBACK = "fallback"


@dataclass(slots=True)
class FallbackSwitch:
    """Shared budget or local fallback, and how often to look for Redis while it is down.

    A refused connection fails at once, so Redis is tried again every ``quick_probe`` seconds: the workers
    notice its return at once, instead of pacing themselves locally beside those already back on the shared
    budget (the two would add up past Telegram's limit). A timeout costs its wait: then every ``probe_every``.
    """

    probe_every: float
    quick_probe: float = 0.2
    mode: BudgetMode = BudgetMode.SHARED
    interval: float = 0.0

    def failed(self, *, slow: bool) -> bool:
        """Redis failed (``slow``: it timed out); True if this starts an outage."""
        started = self.mode is BudgetMode.SHARED
        self.mode = BudgetMode.FALLBACK
        self.interval = self.probe_every if slow else self.quick_probe
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
    bookings: int = 0  # slots asked of Redis (several per round trip in a burst)
