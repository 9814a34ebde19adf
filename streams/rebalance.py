"""Two guards against records lost around rebalances (faust-streaming 0.15).

Measured here: after about one worker restart in three, a stretch of records never
reached the agents. At the end of recovery Faust resumes the stream partitions and
seeks them to their committed offsets while the fetcher runs, then clears every
stream buffer. Records fetched in that window are dropped with the buffer; and as
the seek resets the consumer's read offset under a batch still being delivered,
Faust takes the jump for a gap in the log and commits over records it never handed
to an agent (upstream faust-streaming issues #216, #629).

1. ``hold_fetching`` runs as a table recovery callback, just before that resume and
   seek: it stops the consumer's flow, so nothing is fetched until recovery resumes
   the flow itself, after the seek and after the buffers were cleared.
2. ``StallWatch`` catches whatever still slips through: a partition whose committed
   offset is below its end, with no message of its topic in flight, and whose
   committed offset has not moved for ``STREAM_STALL_AFTER`` seconds, is sought back
   to its committed offset. Records processed after the gap come again; the agents
   are idempotent (the delivery and batch tables), so they cost ignored duplicates.
   It also resumes a consumer flow left stopped outside any rebalance for as long
   (guard 1 stops it; should a recovery end without resuming it, nothing would be
   fetched again), and warns while a rebalance lasts longer than that, each time
   that long again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from agents.notifications.agent import digest_deliveries
from streams.app import app, settings

__all__ = ["Lasting", "PartitionProgress", "StallDetector", "StallWatch", "hold_fetching", "stall_watch"]

log = logging.getLogger(__name__)

#: Seconds between two checks of the partitions.
CHECK_INTERVAL = 5.0


@dataclass(frozen=True, slots=True)
class PartitionProgress:
    """What the watchdog sees of one partition: next offset to commit, end offset, work in flight."""

    committed: int | None
    end: int | None
    busy: bool


class Lasting:
    """Pure policy: has a condition held for ``after`` seconds? (Then its clock starts again.)"""

    def __init__(self, after: float) -> None:
        self.after = after
        self.since: float | None = None

    def observe(self, holds: bool, now: float) -> bool:
        if not holds:
            self.since = None
            return False
        if self.since is None:
            self.since = now
        if now - self.since >= self.after:
            self.since = now
            return True
        return False


class StallDetector:
    """Pure policy: which partitions have records left, nothing in flight, and no progress for ``stall_after`` s."""

    def __init__(self, stall_after: float) -> None:
        self.stall_after = stall_after
        self._clocks: dict[Hashable, tuple[int | None, Lasting]] = {}

    def observe(self, progress: Mapping[Hashable, PartitionProgress], now: float) -> list[Hashable]:
        """Record one look at every partition; return those stalled (their clock starts again)."""
        stalled: list[Hashable] = []
        clocks: dict[Hashable, tuple[int | None, Lasting]] = {}
        for tp, seen in progress.items():
            if seen.busy or seen.end is None or (seen.committed or 0) >= seen.end:
                continue  # not waiting on anything: its clock is dropped
            known = self._clocks.get(tp)
            # First seen behind, or its committed offset moved since: the clock starts over.
            clock = known[1] if known and known[0] == seen.committed else Lasting(self.stall_after)
            if clock.observe(True, now):
                stalled.append(tp)
            clocks[tp] = (seen.committed, clock)
        self._clocks = clocks
        return stalled


class StallWatch:
    """Looks at the worker's stream partitions and seeks back the stalled ones."""

    def __init__(self, stall_after: float) -> None:
        self.stall_after = stall_after
        self.detector = StallDetector(stall_after)
        self.flow_held = Lasting(stall_after)
        self.long_rebalance = Lasting(stall_after)
        self.reseeks = 0
        self.flow_resumes = 0

    def progress(self) -> dict[Any, PartitionProgress]:
        consumer = app.consumer
        # Faust keeps no public view of these; they are the consumer's own bookkeeping.
        committed: Mapping[Any, int | None] = consumer._committed_offset  # type: ignore[attr-defined]
        in_flight = {m.tp.topic for m in list(consumer.unacked) if not m.acked}
        acked_topics = app.topics.acking_topics
        return {
            tp: PartitionProgress(committed.get(tp), consumer.highwater(tp), tp.topic in in_flight)
            for tp in consumer.assignment()
            if tp.topic in acked_topics
        }

    async def check(self) -> None:
        """One look at the partitions; a failure (e.g. the broker is down) is logged, the next look tries again."""
        try:
            await self._check()
        except Exception as exc:
            log.warning("stall watchdog: check failed: %r", exc)

    async def _check(self) -> None:
        consumer, now = app.consumer, time.monotonic()
        if self.long_rebalance.observe(app.rebalancing and not app.should_stop, now):
            log.warning("the worker has been rebalancing for over %.0fs (table recovery running: %s)",
                        self.stall_after, app.in_recovery)
        if app.rebalancing or app.should_stop:
            self.flow_held.observe(False, now)
            return
        if self.flow_held.observe(not (consumer.flow_active and app.flow_control.is_active()), now):
            log.warning("the consumer flow was left stopped outside a rebalance for %.0fs; resuming it",
                        self.stall_after)
            app.flow_control.resume()
            consumer.resume_flow()
            self.flow_resumes += 1
        if not consumer.flow_active:
            return
        progress = self.progress()
        for tp in self.detector.observe(progress, now):
            seen = progress[tp]
            offset = seen.committed
            if offset is None:
                offset = (await consumer.earliest_offsets(tp))[tp]
            log.warning(
                "partition %s-%s: committed offset %s is below its end %s and nothing consumed it for %.0fs; "
                "seeking back to %s",
                tp.topic, tp.partition, seen.committed, seen.end, self.stall_after, offset,
            )
            await consumer.seek(tp, offset)
            self.reseeks += 1


async def hold_fetching() -> None:
    """Stop fetching until recovery resumes the flow (guard 1 of the module docstring)."""
    app.consumer.stop_flow()


# Faust calls every table's recover callbacks after each recovery: one table carries the guard for all.
digest_deliveries.on_recover(hold_fetching)

stall_watch = StallWatch(settings.stream_stall_after)


@app.timer(CHECK_INTERVAL, name="watch-stalled-partitions")
async def watch_stalled_partitions() -> None:
    """Seek back stream partitions that stopped being consumed (see the module docstring)."""
    await stall_watch.check()
