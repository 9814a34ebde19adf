"""Dead letters: writing them (one path for every agent) and replaying them.

``DeadLetterSink`` publishes letters and counts them; ``decode_or_dead_letter`` is
the one way an agent turns a raw external event into a record or a dead letter.

A digest that failed (or a deadline event that hit an internal error) goes back
as a ``DigestRetry`` with ``replay=True``: it starts over at attempt 1 unless it
was sent meanwhile. A daily task goes back to ``daily-tasks``. Malformed events
cannot be replayed: they are counted and left for a person to read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from faust.types import EventT

from models.records import (
    DeadLetter,
    DigestRetry,
    InvalidEvent,
    parse_daily_task,
    parse_deadline_passed,
    rejected_event,
)
from streams.kafka_security import kafka_options
from streams.settings import Settings

__all__ = ["DeadLetterSink", "Replay", "ReplayStep", "decode_or_dead_letter", "plan_replay", "replay_dead_letters"]

log = logging.getLogger(__name__)

JOIN_TIMEOUT = 30.0  # seconds a replay waits for its consumer group's assignment

T = TypeVar("T")


class DeadLetterSink:
    """Publishes dead letters to the ``dead-letters`` topic and counts them (one sink per capability).

    ``malformed`` counts, by source topic, the letters that are malformed events.
    """

    def __init__(self, topic: faust.TopicT) -> None:
        self.topic = topic
        self.count = 0
        self.malformed: Counter[str] = Counter()

    async def send(self, letter: DeadLetter) -> None:
        self.count += 1
        await self.topic.send(key=letter.key or "", value=letter)


async def decode_or_dead_letter(event: EventT, parse: Callable[[bytes], T], sink: DeadLetterSink) -> T | None:
    """The record in a raw external event, or None once a malformed one is logged and dead-lettered."""
    try:
        return parse(event.value)
    except InvalidEvent as exc:
        message = event.message
        log.warning(
            "%s: malformed event at partition %s offset %s: %s -> dead letter",
            message.topic,
            message.partition,
            message.offset,
            exc,
        )
        sink.malformed[message.topic] += 1
        await sink.send(rejected_event(event, str(exc)))
        return None


@dataclass(frozen=True, slots=True)
class Replay:
    topic: str  # without TOPIC_PREFIX
    key: str
    value: bytes


@dataclass(frozen=True, slots=True)
class ReplayStep:
    """What a replay did (or, dry, would do) with one letter: ``plan`` None means it cannot be replayed."""

    partition: int
    offset: int
    letter: dict[str, Any]
    plan: Replay | None


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


class _Assigned(ConsumerRebalanceListener):
    """``done`` is set once the replay's consumer group has assigned it its partitions."""

    def __init__(self) -> None:
        self.done = asyncio.Event()

    def on_partitions_revoked(self, revoked: object) -> None:
        """Nothing to do: a replay commits after each batch it handled."""

    def on_partitions_assigned(self, assigned: object) -> None:
        self.done.set()


async def replay_dead_letters(
    settings: Settings,
    *,
    dry_run: bool = False,
    idle: float = 2.0,
    report: Callable[[ReplayStep], None] | None = None,
) -> dict[str, int]:
    """Replay the letters this command has not replayed yet (its own consumer group); return counts.

    ``report`` is told each letter's step (the operator console lists them).
    """
    options = kafka_options(settings)
    consumer = AIOKafkaConsumer(
        **options,
        group_id=f"{settings.app_id}-dead-letter-replay",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    assigned = _Assigned()
    consumer.subscribe([settings.topic("dead-letters")], listener=assigned)
    producer = AIOKafkaProducer(**options, acks="all")
    counts = {"replayed": 0, "unreplayable": 0}
    await consumer.start()
    await producer.start()
    try:
        # Quiet counts from the assignment: a group's first join waits group.initial.rebalance.delay.ms (3 s default).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(assigned.done.wait(), JOIN_TIMEOUT)
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
                    if report is not None:
                        shown = letter if isinstance(letter, dict) else {}
                        report(ReplayStep(message.partition, message.offset, shown, plan))
                    if plan is None:
                        counts["unreplayable"] += 1
                        log.warning(
                            "dead letter at offset %s cannot be replayed: %s",
                            message.offset,
                            letter.get("reason") if isinstance(letter, dict) else "not a dead letter",
                        )
                        continue
                    counts["replayed"] += 1
                    log.info(
                        "dead letter at offset %s -> %s key %s%s",
                        message.offset,
                        plan.topic,
                        plan.key,
                        " (dry run)" if dry_run else "",
                    )
                    if not dry_run:
                        await producer.send_and_wait(settings.topic(plan.topic), plan.value, key=plan.key.encode())
            if batch and not dry_run:
                await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()
    return counts
