"""Replaying the dead-letter topic: what each letter becomes, and the replay loop.

A digest that failed (or a deadline event that hit an internal error) goes back
as a ``DigestRetry`` with ``replay=True``: it starts over at attempt 1 unless it
was sent meanwhile. A daily task goes back to ``daily-tasks``. Malformed events
cannot be replayed: they are counted and left for a person to read.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from models.records import DigestRetry, InvalidEvent, parse_daily_task, parse_deadline_passed
from streams.producers import bootstrap_servers
from streams.settings import Settings

__all__ = ["Replay", "plan_replay", "replay_dead_letters"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Replay:
    topic: str  # without TOPIC_PREFIX
    key: str
    value: bytes


def plan_replay(letter: dict[str, Any], now: float) -> Replay | None:
    """What to publish to replay ``letter`` (a ``DeadLetter`` as JSON), or None if it cannot be."""
    source, payload = str(letter.get("source_topic", "")), letter.get("payload")
    if not isinstance(payload, str) or payload.startswith("base64:"):
        return None
    try:
        if source.endswith(("deadline-passed", "digest-retries")):
            event = parse_deadline_passed(payload)
            retry = DigestRetry(cafe_id=event.cafe_id, date=event.date, attempt=1, not_before=now, replay=True)
            return Replay("digest-retries", str(event.cafe_id), retry.dumps())
        if source.endswith("daily-tasks"):
            parse_daily_task(payload)
            return Replay("daily-tasks", str(letter.get("key") or ""), payload.encode())
    except InvalidEvent:
        return None
    return None


async def replay_dead_letters(settings: Settings, *, dry_run: bool = False, idle: float = 2.0) -> dict[str, int]:
    """Replay the letters this command has not replayed yet (its own consumer group); return counts."""
    servers = bootstrap_servers(settings.kafka_broker_url)
    consumer = AIOKafkaConsumer(
        settings.topic("dead-letters"),
        bootstrap_servers=servers,
        group_id=f"{settings.app_id}-dead-letter-replay",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all")
    counts = {"replayed": 0, "unreplayable": 0}
    await consumer.start()
    await producer.start()
    try:
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < idle:
            batch = await consumer.getmany(timeout_ms=200)
            for messages in batch.values():
                for message in messages:
                    quiet_since = time.monotonic()
                    try:
                        letter = json.loads(message.value)
                    except ValueError:
                        letter = {}
                    plan = plan_replay(letter, time.time()) if isinstance(letter, dict) else None
                    if plan is None:
                        counts["unreplayable"] += 1
                        log.warning("dead letter at offset %s cannot be replayed: %s", message.offset,
                                    letter.get("reason") if isinstance(letter, dict) else "not a dead letter")
                        continue
                    counts["replayed"] += 1
                    log.info("dead letter at offset %s -> %s key %s%s", message.offset, plan.topic, plan.key,
                             " (dry run)" if dry_run else "")
                    if not dry_run:
                        await producer.send_and_wait(settings.topic(plan.topic), plan.value, key=plan.key.encode())
            if batch and not dry_run:
                await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()
    return counts
