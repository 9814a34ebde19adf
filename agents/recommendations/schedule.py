"""When the daily batch is due: pure functions over the crontab expression."""

from __future__ import annotations

from datetime import datetime, timedelta

from croniter import croniter

__all__ = ["latest_fire", "missed"]


def latest_fire(cron: str, now: datetime) -> datetime:
    """The most recent time at or before ``now`` (timezone-aware) that ``cron`` fires."""
    return croniter(cron, now + timedelta(seconds=1)).get_prev(datetime)


def missed(last_fire: float | None, due: datetime) -> bool:
    """Whether the fire at ``due`` has not run yet (``last_fire`` is the epoch of the last one that did)."""
    return last_fire is None or last_fire < due.timestamp()
