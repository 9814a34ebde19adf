"""What the alert rules watch of recommendation batches: status, silence and resends of the recent ones.

Read at scrape time from the ``recommendation-batches`` table, which lives on one worker
(its topic has one partition): the other workers export no batch at all.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from agents.recommendations.batches import BatchCounts, BatchStatus

__all__ = ["BATCH_HEALTH", "RECENT_BATCHES", "batch_health", "batch_health_metrics"]

#: Batches exported, the most recently started ones.
RECENT_BATCHES = 5
#: The states a batch is in, one each: ``abandoned`` is a batch finished by giving up on users who never reported.
BATCH_HEALTH = ("running", "finished", "stopped", "abandoned")


def batch_health(counts: BatchCounts) -> str:
    """One of ``BATCH_HEALTH``."""
    if counts.status is BatchStatus.FINISHED and counts.stopped_reason:
        return "abandoned"
    return counts.status.value


def recent(raw_batches: Iterable[dict]) -> list[BatchCounts]:
    """The ``RECENT_BATCHES`` batches started last, oldest first."""
    batches = sorted((BatchCounts.from_dict(raw) for raw in raw_batches), key=lambda b: b.started_at or 0)
    return batches[-RECENT_BATCHES:]


def batch_health_metrics(raw_batches: Iterable[dict], now: float | None = None) -> Iterator[Metric]:
    """Per recent batch: its state (1 for the current one), start time, seconds since a user last reported
    (running batches only) and rounds of resending its missing users."""
    now = time.time() if now is None else now
    state = GaugeMetricFamily(
        "lunch_recommendation_batch_state", "1 for the batch's current state", labels=["batch", "state"]
    )
    started = GaugeMetricFamily(
        "lunch_recommendation_batch_start_time_seconds", "When the batch started (UNIX time)", labels=["batch"]
    )
    idle = GaugeMetricFamily(
        "lunch_recommendation_batch_idle_seconds",
        "Seconds since a running batch last heard from one of its users",
        labels=["batch"],
    )
    resends = GaugeMetricFamily(
        "lunch_recommendation_batch_resends", "Rounds of resending a stalled batch's missing users", labels=["batch"]
    )
    for counts in recent(raw_batches):
        current = batch_health(counts)
        for name in BATCH_HEALTH:
            state.add_metric([counts.batch_id, name], float(name == current))
        if counts.started_at is not None:
            started.add_metric([counts.batch_id], counts.started_at)
        if current == "running":
            idle.add_metric([counts.batch_id], max(0.0, now - (counts.updated_at or counts.started_at or now)))
        resends.add_metric([counts.batch_id], float(counts.resent))
    yield from (state, started, idle, resends)
