"""The console's service: reads what the worker keeps, and runs the one action (replaying dead letters).

Built by the wiring at worker start with the tables, the other capabilities' services and a
read-only cafe-name source. Every read degrades to a note on the page instead of failing it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import faust

from agents.console.model import Letters, summarize_letters
from agents.console.sources import CafeNames, read_dead_letters
from agents.notifications.shared_budget import SharedBudget
from agents.recommendations.gemini import GeminiRecommender
from agents.recommendations.usage import TokenPrices
from streams.binding import Late
from streams.dead_letters import ReplayStep, replay_dead_letters
from streams.settings import Settings

__all__ = ["Console", "Replayed", "console"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Replayed:
    """What a replay (or its dry run) did: the command's counts and each letter's step."""

    dry_run: bool
    counts: dict[str, int]
    steps: list[ReplayStep]


@dataclass
class Console:
    """What the console's views read and do, on this worker."""

    settings: Settings
    deliveries: faust.Table  # digest-deliveries: cafe id -> {date -> DeliveryState dict}
    batches: faust.Table  # recommendation-batches: batch id -> BatchCounts dict
    cafes: CafeNames
    budget: SharedBudget | None  # None: TELEGRAM_BOT_TOKEN is not set
    gemini: GeminiRecommender | None  # None: GEMINI_API_KEYS is not set
    replay_idle: float = 1.0  # seconds without a new letter that end a replay
    _replaying: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def prices(self) -> TokenPrices:
        return TokenPrices(self.settings.gemini_price_input_per_m, self.settings.gemini_price_output_per_m)

    def local_digests(self, day: str) -> dict[str, dict[str, Any]]:
        """``day``'s state of every cafe this worker holds (its partitions, and standby copies)."""
        found = {}
        for cafe, by_day in self.deliveries.items():
            if isinstance(by_day, dict) and isinstance(state := by_day.get(day), dict):
                found[str(cafe)] = state
        return found

    def local_batches(self) -> list[dict[str, Any]]:
        return [dict(raw) for raw in self.batches.values()]

    async def cafe_names(self, ids: Iterable[int]) -> tuple[dict[int, str], str | None]:
        """Names by id, and what went wrong (the page then shows ids)."""
        try:
            return await self.cafes.names(ids), None
        except Exception as exc:  # the database is outside: the page goes on without names
            return {}, f"cafe names unavailable (PostgreSQL: {type(exc).__name__})"

    async def key_pool(self) -> dict[str, Any] | None:
        return await self.gemini.describe() if self.gemini is not None else None

    async def telegram_budget(self) -> dict[str, object] | None:
        return await self.budget.describe() if self.budget is not None else None

    async def letters(self) -> tuple[Letters | None, str | None]:
        """The dead letters, summarized, and what went wrong reading them."""
        try:
            records, replayed_up_to = await read_dead_letters(self.settings)
        except Exception as exc:  # Kafka is outside: the page goes on without letters
            return None, f"dead letters unavailable (Kafka: {type(exc).__name__})"
        return summarize_letters(records, replayed_up_to, prefix=self.settings.topic_prefix, now=time.time()), None

    async def replay(self, *, dry_run: bool, who: str) -> Replayed:
        """Run ``replay-dead-letters`` (one at a time on this worker); logged with who asked and what it did."""
        steps: list[ReplayStep] = []
        async with self._replaying:
            counts = await replay_dead_letters(
                self.settings, dry_run=dry_run, idle=self.replay_idle, report=steps.append
            )
        log.log(
            logging.INFO if dry_run else logging.WARNING,
            "ops console: replay-dead-letters%s by %s: %d replayed, %d unreplayable",
            " --dry-run" if dry_run else "",
            who,
            counts["replayed"],
            counts["unreplayable"],
        )
        return Replayed(dry_run, counts, steps)


#: Bound by ``streams.worker`` at worker start.
console: Late[Console] = Late("operator console")
