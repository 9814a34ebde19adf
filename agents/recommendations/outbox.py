"""Where a batch's records go: one request per user, and progress for the counter."""

from __future__ import annotations

from datetime import date

import faust

from models.records import BatchProgress, RecommendationRequest

__all__ = ["BatchOutbox"]


class BatchOutbox:
    """Publishes ``recommendation-requests`` (key: user id) and ``recommendation-batch-progress`` (key: batch id)."""

    def __init__(self, *, requests: faust.TopicT, progress: faust.TopicT) -> None:
        self._requests = requests
        self._progress = progress

    async def request(self, batch_id: str, user_id: int, day: date) -> None:
        value = RecommendationRequest(batch_id=batch_id, user_id=user_id, day=day.isoformat())
        await self._requests.send(key=str(user_id), value=value)

    async def progress(self, event: BatchProgress) -> None:
        await self._progress.send(key=event.batch_id, value=event)
