"""The dates of deliveries (pure, no I/O): which an event may name, which the table keeps, which cafes to drop.

An event may name a date from ``EVENT_DATE_DAYS_BACK`` before today (in ``TIMEZONE``) to ``_AHEAD`` after; the
table keeps every date of that window (so no flood of dates pushes a delivered one out of the duplicate check) and
drops a cafe whose newest date is older than ``STATE_RETENTION_DAYS``. A cafe's entry of ``digest-deliveries``
lives in the partition its key hashes to (the default murmur2 partitioner, as the backend's and our producers
use), and only an event of that partition may write its tombstone: a sweep names its partition, and only that
partition's keys are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiokafka.partitioner import DefaultPartitioner

from models.records import InvalidEvent
from streams.settings import Settings

__all__ = ["DeliveryDates", "partition_of", "retention_cutoff", "stale_cafes"]

_partitioner = DefaultPartitioner()


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner puts ``key`` in."""
    every = list(range(partitions))
    return _partitioner(key.encode(), every, every)


@dataclass(frozen=True, slots=True)
class DeliveryDates:
    """The event window and the retention, in a zone; every method takes the time (epoch seconds)."""

    days_back: int
    days_ahead: int
    retention_days: int
    zone: ZoneInfo

    @classmethod
    def of(cls, config: Settings) -> DeliveryDates:
        return cls(config.event_date_days_back, config.event_date_days_ahead, config.state_retention_days, config.zone)

    def today(self, now: float) -> date:
        return datetime.fromtimestamp(now, self.zone).date()

    def window(self, now: float) -> tuple[date, date]:
        """The first and last date an event may name."""
        today = self.today(now)
        return today - timedelta(days=self.days_back), today + timedelta(days=self.days_ahead)

    def check(self, day: date, now: float) -> None:
        """Raise ``InvalidEvent`` when ``day`` is outside the window."""
        earliest, latest = self.window(now)
        if not earliest <= day <= latest:
            raise InvalidEvent(f"date {day.isoformat()} outside the accepted window {earliest} .. {latest}")

    def cutoff(self, now: float) -> str:
        """The oldest date (ISO) a cafe's state must hold to be kept (see :func:`retention_cutoff`)."""
        return retention_cutoff(self.today(now), retention_days=self.retention_days, days_back=self.days_back)


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
