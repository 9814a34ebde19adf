"""The batch counter: the only writer of each batch's counts, and the net for lost requests.

It owns the one-partition ``recommendation-batch-progress`` topic and the tables
``recommendation-batches`` and ``recommendation-batch-users``. Every outcome is
counted once per user and batch, even when a request was delivered twice. On the
leader's periodic ``sweep`` it looks for running batches that heard from none of
their users for ``RECOMMENDATIONS_STALL_AFTER`` seconds (a request lost in a
rebalance, see docs/operations.md, *Rebalances*) and sends again the requests of the users not
counted yet; after ``MAX_RESENDS`` rounds the users still missing count as failed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import date

import faust

from agents.recommendations.batches import BatchCounts, add_tokens, apply_progress, progress_step
from agents.recommendations.outbox import BatchOutbox
from agents.recommendations.ports import UserSource
from models.records import USER_OUTCOMES, BatchProgress, ProgressKind

__all__ = ["MAX_RESENDS", "BatchCounter"]

log = logging.getLogger(__name__)

MAX_RESENDS = 3


class BatchCounter:
    """Folds progress into the batch tables, and resends a stalled batch's missing users."""

    def __init__(
        self,
        *,
        batches: faust.Table,
        counted: faust.Table,
        users: UserSource,
        outbox: BatchOutbox,
        stall_after: float,
        retention: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``retention``: seconds a finished batch is kept (then removed, a tombstone in the changelog)."""
        self.batches = batches
        self.counted = counted
        self.users = users
        self.outbox = outbox
        self.stall_after = stall_after
        self.retention = retention
        self.clock = clock

    def counts(self, batch_id: str) -> BatchCounts | None:
        raw = self.batches.get(batch_id)
        return BatchCounts.from_dict(raw) if raw is not None else None

    async def on_progress(self, event: BatchProgress) -> None:
        if event.kind is ProgressKind.SWEEP:
            await self.sweep()
        else:
            self.count(event)

    def count(self, event: BatchProgress) -> None:
        """Fold ``event`` into its batch's counts (a user's outcome once per batch, its tokens always)."""
        if event.user_id is not None and event.kind in USER_OUTCOMES:
            user_key = f"{event.batch_id}:{event.user_id}"
            if user_key in self.counted:
                log.info("recommendation batch=%s user=%s: already counted", event.batch_id, event.user_id)
                if (counts := self.counts(event.batch_id)) is not None:
                    self.batches[event.batch_id] = add_tokens(counts, event).to_dict()
                return
            self.counted[user_key] = event.kind.value
        before = self.counts(event.batch_id)
        counts = apply_progress(before, event)
        self.batches[event.batch_id] = counts.to_dict()
        tally = f"{counts.succeeded} ok, {counts.failed} failed, {counts.skipped} skipped"
        if counts.finished_at is not None and (before is None or before.finished_at is None):
            seconds = counts.finished_at - (counts.started_at or counts.finished_at)
            log.info(
                "recommendations batch %s %s: %d users in %.1fs (%s)",
                event.batch_id,
                counts.status.value,
                counts.total,
                seconds,
                tally,
            )
            for user_key in self._counted_keys(event.batch_id):
                del self.counted[user_key]
        elif event.kind in USER_OUTCOMES and counts.done % progress_step(counts.total) == 0:
            log.info("recommendations batch %s: %d/%d done (%s)", event.batch_id, counts.done, counts.total, tally)

    async def sweep(self) -> None:
        """Drop batches finished longer than ``retention`` ago; send again the requests of running batches
        whose users stopped reporting, and abandon them after MAX_RESENDS."""
        now = self.clock()
        for raw in list(self.batches.values()):
            counts = BatchCounts.from_dict(raw)
            if counts.finished_at is not None and counts.finished_at < now - self.retention:
                del self.batches[counts.batch_id]
                for user_key in self._counted_keys(counts.batch_id):
                    del self.counted[user_key]
                log.info("recommendations batch %s: dropped (finished more than the retention ago)", counts.batch_id)
                continue
            if not counts.stalled(now, self.stall_after) or counts.day is None:
                continue
            batch_id, day = counts.batch_id, date.fromisoformat(counts.day)
            prefix = f"{batch_id}:"
            done = {int(key[len(prefix) :]) for key in self._counted_keys(batch_id)}
            missing = [user for user in await self.users.active_user_ids(day) if user not in done]
            if counts.resent >= MAX_RESENDS or not missing:
                log.error(
                    "recommendations batch %s: %d users never reported; batch abandoned",
                    batch_id,
                    counts.total - counts.done,
                )
                reason = "users never reported after resends"
                self.count(BatchProgress(batch_id=batch_id, kind=ProgressKind.ABANDONED, at=now, reason=reason))
                continue
            log.warning("recommendations batch %s stalled: sending %d requests again", batch_id, len(missing))
            self.count(BatchProgress(batch_id=batch_id, kind=ProgressKind.RESENT, at=now, total=len(missing)))
            for user_id in missing:
                await self.outbox.request(batch_id, user_id, day)

    def _counted_keys(self, batch_id: str) -> list[str]:
        prefix = f"{batch_id}:"
        return [key for key in self.counted if key.startswith(prefix)]
