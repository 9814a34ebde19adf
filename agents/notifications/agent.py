"""Agents of deadline notifications: thin loops over the ``DigestNotifier`` the worker builds at start."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterable
from dataclasses import dataclass
from typing import Any

from agents.notifications.notifier import DigestNotifier
from agents.notifications.shared_budget import SharedBudget
from agents.notifications.telegram import TelegramClient
from models.records import DeliverySweep
from streams.app import app, settings
from streams.binding import Late
from streams.topics import deadline_passed_topic, digest_retries_topic

__all__ = [
    "Notifications",
    "digest_deliveries",
    "notifications",
    "notify_cafe_on_deadline",
    "retry_digest",
    "sweep_digest_deliveries",
]

log = logging.getLogger(__name__)

#: How often the leader asks every partition to drop the state of cafes gone quiet (seconds).
RETENTION_INTERVAL = 3600.0

digest_deliveries = app.Table(
    "digest-deliveries",
    default=None,
    partitions=settings.topic_partitions,
    key_type=str,
    help="Delivery state of each cafe's digests, by date: status, attempts, next attempt, last error.",
)


@dataclass(frozen=True, slots=True)
class Notifications:
    """What the notification agents, views and metrics use, built at worker start."""

    notifier: DigestNotifier
    telegram: TelegramClient | None  # None: TELEGRAM_BOT_TOKEN is not set, every digest is dead-lettered
    budget: SharedBudget | None


#: Bound by ``streams.worker`` at worker start.
notifications: Late[Notifications] = Late("deadline notifications")


@app.agent(deadline_passed_topic, name="notify-cafe-on-deadline")
async def notify_cafe_on_deadline(stream: AsyncIterable[Any]) -> None:
    """Send each cafe its order digest when its ordering deadline passes, several cafes at a time."""
    manual = stream.noack()  # type: ignore[attr-defined]
    async for event in manual.events():
        await notifications().notifier.admit(event, manual.ack)


@app.agent(digest_retries_topic, name="retry-digest")
async def retry_digest(stream: AsyncIterable[Any]) -> None:
    """Retry digests that failed, or had to wait, for a reason that may pass (rate limits, outages)."""
    manual = stream.noack()  # type: ignore[attr-defined]
    async for event in manual.events():
        await notifications().notifier.admit_retry(event, manual.ack)


@app.timer(interval=RETENTION_INTERVAL, on_leader=True)
async def sweep_digest_deliveries() -> None:
    """Ask each partition of the delivery table to drop cafes with no digest in STATE_RETENTION_DAYS (leader)."""
    sweep = DeliverySweep(sweep=True, at=time.time())
    try:
        for partition in range(digest_deliveries.partitions or settings.topic_partitions):
            await digest_retries_topic.send(key=b"sweep", value=sweep, partition=partition)
    except Exception:  # an exception in a timer stops the worker; the next one tries again
        log.exception("digest-deliveries: could not send the retention sweep")
