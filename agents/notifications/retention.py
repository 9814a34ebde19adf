"""Which cafes' delivery state to drop: those with no date left inside the kept window (pure, no I/O).

A cafe's entry of ``digest-deliveries`` lives in the partition its key hashes to (the default
murmur2 partitioner, as the backend's and our producers use), and only an event of that partition
may write its tombstone: a sweep names its partition, and only that partition's keys are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from typing import Any

from aiokafka.partitioner import DefaultPartitioner

__all__ = ["partition_of", "retention_cutoff", "stale_cafes"]

_partitioner = DefaultPartitioner()


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner puts ``key`` in."""
    every = list(range(partitions))
    return _partitioner(key.encode(), every, every)


def retention_cutoff(today: date, *, retention_days: int, days_back: int) -> str:
    """The oldest date (ISO) whose state is kept: ``retention_days`` back, and never inside the event window
    (a date an event may still name keeps its state, or a repeated deadline would be sent again)."""
    return (today - timedelta(days=max(retention_days, days_back))).isoformat()


def stale_cafes(
    entries: Iterable[tuple[str, Mapping[str, Any] | None]], *, partition: int, partitions: int, cutoff: str
) -> list[str]:
    """The keys of ``partition`` whose every date is before ``cutoff`` (or that hold none)."""
    return [
        key
        for key, states in entries
        if partition_of(key, partitions) == partition and (not states or max(states) < cutoff)
    ]
