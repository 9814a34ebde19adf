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
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from faust.types import EventT

from models.records import (
    DEFAULT_MAX_PAYLOAD,
    DeadLetter,
    DigestRetry,
    InvalidEvent,
    dead_letter,
    parse_daily_task,
    parse_dead_letter,
    parse_deadline_passed,
    rejected_event,
)
from streams.kafka_security import kafka_options
from streams.settings import Settings

__all__ = [
    "UNWRITTEN",
    "DeadLetterNotWritten",
    "DeadLetterSink",
    "Replay",
    "ReplayStep",
    "decode_or_dead_letter",
    "plan_replay",
    "read_letter",
    "replay_dead_letters",
    "unless_unwritten",
]

log = logging.getLogger(__name__)

JOIN_TIMEOUT = 30.0  # seconds a replay waits for its consumer group's assignment
#: Tries of one letter's write, the pause before the second, and how long one try waits for the broker's ack.
LETTER_TRIES, LETTER_BACKOFF, LETTER_TIMEOUT = 3, 0.5, 15.0

T = TypeVar("T")


class DeadLetterNotWritten(RuntimeError):
    """The broker did not take a dead letter: the event it was for must not be acknowledged (it comes again)."""


class DeadLetterSink:
    """Publishes dead letters to the ``dead-letters`` topic and counts them (one sink per capability).

    A letter counts once the broker has acknowledged it; one it never takes raises
    :class:`DeadLetterNotWritten`, so the caller leaves its event unacknowledged instead of losing it.
    Payloads above ``max_payload`` bytes are truncated (``models.records.dead_letter``): a letter always fits.
    ``malformed`` counts, by source topic, the letters that are malformed events.
    """

    def __init__(
        self, topic: faust.TopicT, *, max_payload: int = DEFAULT_MAX_PAYLOAD, backoff: float = LETTER_BACKOFF
    ) -> None:
        self.topic = topic
        self.max_payload = max_payload
        self.backoff = backoff
        self.count = 0
        self.malformed: Counter[str] = Counter()

    async def send(self, letter: DeadLetter) -> None:
        """Write ``letter`` and wait for the broker's ack (a few tries); raise ``DeadLetterNotWritten`` if none."""
        for attempt in range(1, LETTER_TRIES + 1):
            try:
                async with asyncio.timeout(LETTER_TIMEOUT):
                    delivered = await self.topic.send(key=letter.key or "", value=letter)
                    await delivered
            except Exception as exc:  # the broker: down, slow, or refusing
                log.error(
                    "dead letter from %s (%s) not written, try %s of %s: %s",
                    letter.source_topic,
                    letter.reason[:100],
                    attempt,
                    LETTER_TRIES,
                    type(exc).__name__,
                )
                if attempt == LETTER_TRIES:
                    raise DeadLetterNotWritten(f"dead letter from {letter.source_topic} not written") from None
                await asyncio.sleep(self.backoff * attempt)
            else:
                self.count += 1
                return

    async def reject(self, event: EventT, reason: str) -> None:
        """Dead-letter a stream event we could not process (its topic, partition, offset and value)."""
        await self.send(rejected_event(event, reason, max_payload=self.max_payload))

    async def give_up(self, source_topic: str, reason: str, key: object, value: bytes | None) -> None:
        """Dead-letter ``value`` of ``source_topic`` that we gave up on."""
        await self.send(dead_letter(source_topic, reason, key, value, max_payload=self.max_payload))


async def decode_or_dead_letter(event: EventT, parse: Callable[[bytes], T], sink: DeadLetterSink) -> T | None:
    """The record in a raw event, or None once a malformed one is logged and dead-lettered.

    Raises ``DeadLetterNotWritten`` when its letter could not be written (the event must not be acknowledged).
    """
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
        await sink.reject(event, str(exc))
        sink.malformed[message.topic] += 1
        return None


#: What ``unless_unwritten`` gives when a dead letter the work needed could not be written.
UNWRITTEN = object()


async def unless_unwritten(event: EventT, work: Awaitable[T]) -> T | object:
    """``work``'s result, or ``UNWRITTEN`` (logged) when a dead letter it needed was not written: the caller
    then leaves ``event`` unacknowledged, so it comes again after a restart or rebalance instead of being lost."""
    try:
        return await work
    except DeadLetterNotWritten:
        message = event.message
        log.error(
            "%s: partition %s offset %s left unacknowledged: its dead letter could not be written; "
            "it is handled again after a restart or rebalance",
            message.topic,
            message.partition,
            message.offset,
        )
        return UNWRITTEN


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


def read_letter(raw: bytes | None) -> dict[str, Any]:
    """A ``dead-letters`` value as the fields of its ``DeadLetter``; one that is none says why in ``reason``."""
    try:
        return parse_dead_letter(raw).asdict()
    except InvalidEvent as exc:
        return {"source_topic": "", "reason": f"not a dead letter: {exc}", "key": None, "payload": None}


def plan_replay(letter: dict[str, Any], now: float) -> Replay | None:
    """What to publish to replay ``letter`` (a ``DeadLetter`` as JSON), or None if it cannot be. Never raises."""
    source, payload = str(letter.get("source_topic", "")), letter.get("payload")
    if not isinstance(payload, str) or payload.startswith("base64:") or letter.get("truncated"):
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
                    letter = read_letter(message.value)
                    plan = plan_replay(letter, time.time())
                    if report is not None:
                        report(ReplayStep(message.partition, message.offset, letter, plan))
                    if plan is None:
                        counts["unreplayable"] += 1
                        log.warning(
                            "dead letter at offset %s cannot be replayed: %s",
                            message.offset,
                            letter.get("reason"),
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
