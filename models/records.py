"""Typed records of every topic, and total decoding of all of them.

Every topic, ours included, is consumed as raw bytes and decoded here: any bytes give
a typed record or an :class:`InvalidEvent` with a reason (never another exception), so
a malformed event becomes a dead letter instead of a decode error inside Faust's stream
iterator (which would crash the agent and lose the event). The JSON is bounded before it
is parsed: its size, its nesting depth, and no ``NaN``/``Infinity``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

import faust

from models.decoding import (
    MAX_TEXT,
    InvalidEvent,
    decode_record,
    iso_date,
    load_object,
    optional_datetime,
    positive_int,
    record_of,
)

__all__ = [
    "USER_OUTCOMES",
    "BatchProgress",
    "BatchTrigger",
    "DailyTask",
    "DeadLetter",
    "DeadlinePassed",
    "DeliverySweep",
    "DigestRetry",
    "InvalidEvent",
    "ProgressKind",
    "RecommendationRequest",
    "TriggerReason",
    "dead_letter",
    "decode_record",
    "key_text",
    "parse_batch_progress",
    "parse_batch_trigger",
    "parse_daily_task",
    "parse_dead_letter",
    "parse_deadline_passed",
    "parse_digest_retry",
    "parse_recommendation_request",
    "parse_retry_or_sweep",
    "payload_text",
    "rejected_event",
]

#: The payload a dead letter keeps by default (``DEAD_LETTER_MAX_PAYLOAD``).
DEFAULT_MAX_PAYLOAD = 64 * 1024


class DeadlinePassed(faust.Record, serializer="json"):
    """A cafe's ordering deadline for ``date`` has passed (key: cafe id)."""

    cafe_id: int
    date: str  # ISO date, validated by parse_deadline_passed
    deadline: str | None = None  # ISO-8601 datetime with offset

    @property
    def order_date(self) -> date:
        return date.fromisoformat(self.date)


class DailyTask(faust.Record, serializer="json"):
    """A task for the daily jobs, e.g. ``{"type": "generate_recommendations"}``."""

    type: str
    requested_at: str | None = None


class DigestRetry(faust.Record, serializer="json"):
    """A digest that must be tried again at ``not_before`` (key: cafe id).

    It carries only what identifies the attempt: the worker renders the digest from the
    database again and sends it to the cafe's chat, and takes how far it got from its own
    table, so a record written by anyone else can make it send nothing the database does
    not hold. ``replay`` marks a dead letter sent back by an operator: it starts over at
    attempt 1 whatever the state, unless the digest was sent.
    """

    cafe_id: int
    date: str
    attempt: int  # the attempt this record will make
    not_before: float  # epoch seconds
    replay: bool = False
    first_attempt_at: float | None = None  # epoch seconds; None in records written before it existed


class DeliverySweep(faust.Record, serializer="json"):
    """Asks the ``digest-retries`` partition it is sent to to drop the delivery state of cafes gone quiet."""

    sweep: bool
    at: float  # epoch seconds


class TriggerReason(StrEnum):
    MANUAL = "manual"  # a generate_recommendations daily task: a batch starts at once
    SCHEDULED = "scheduled"  # the crontab fired: the day's batch starts unless it ran
    TICK = "tick"  # the leader's periodic check: a missed scheduled batch catches up


class BatchTrigger(faust.Record, serializer="json"):
    """Asks the batch planner to consider a run.

    ``source`` names the ``daily-tasks`` record (topic:partition:offset) behind a manual trigger,
    so that the record delivered again after a crash starts no second batch.
    """

    reason: TriggerReason
    requested_at: str | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        self.reason = TriggerReason(self.reason)


class RecommendationRequest(faust.Record, serializer="json"):
    """One active user's recommendation within a batch (key: user id)."""

    batch_id: str
    user_id: int
    day: str  # ISO date the batch is for, in TIMEZONE


class ProgressKind(StrEnum):
    STARTED = "started"  # with ``total``, ``day`` and ``trigger``
    SUCCEEDED = "succeeded"  # one per user
    FAILED = "failed"  # one per user
    SKIPPED = "skipped"  # one per user
    STOPPED = "stopped"  # every Gemini key exhausted: the rest is skipped
    RESENT = "resent"  # ``total`` requests of a stalled batch sent again
    ABANDONED = "abandoned"  # the users still missing after every resend: counted as failed
    SWEEP = "sweep"  # the leader's periodic check: the counter resends stalled batches' missing users


#: Kinds that account for one user of a batch.
USER_OUTCOMES = frozenset({ProgressKind.SUCCEEDED, ProgressKind.FAILED, ProgressKind.SKIPPED})


class BatchProgress(faust.Record, serializer="json"):
    """A change to a batch's counts (key: batch id; ``sweep`` records carry no batch's)."""

    batch_id: str
    kind: ProgressKind
    at: float  # epoch seconds
    total: int = 0
    day: str | None = None
    trigger: str | None = None
    user_id: int | None = None
    reason: str | None = None
    # Tokens of the user's Gemini answer, when one came (absent in records written before they were kept).
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None

    def __post_init__(self) -> None:
        self.kind = ProgressKind(self.kind)


class DeadLetter(faust.Record, serializer="json"):
    """Something we gave up on, with enough to inspect and replay it.

    A value longer than the limit is kept ``truncated``: its start, with the size and SHA-256 of the whole.
    """

    source_topic: str
    reason: str
    key: str | None
    payload: str  # the original value: UTF-8 text, or "base64:..." for binary
    failed_at: str  # ISO-8601 UTC
    partition: int | None = None
    offset: int | None = None
    truncated: bool = False
    payload_size: int | None = None  # bytes of the original value
    payload_sha256: str | None = None


def payload_text(raw: bytes | None) -> str:
    """The raw value as text for a dead letter (base64 when it is not UTF-8)."""
    if raw is None:
        return ""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(raw).decode("ascii")


def _encoded_size(text: str) -> int:
    return len(json.dumps(text))


def bounded_payload(raw: bytes, limit: int) -> str:
    """The longest start of ``raw`` whose text (as ``payload_text``) takes at most ``limit`` bytes as JSON."""
    low, high = 0, min(len(raw), limit)
    while low < high:  # the longest prefix that fits: JSON escapes make a byte cost 1 to 6
        middle = (low + high + 1) // 2
        if _encoded_size(payload_text(raw[:middle])) <= limit:
            low = middle
        else:
            high = middle - 1
    return payload_text(raw[:low])


def key_text(key: object) -> str | None:
    """A message key as text (keys are raw bytes on external topics)."""
    if key is None:
        return None
    if isinstance(key, bytes):
        return key.decode("utf-8", "replace")
    return str(key)


def dead_letter(
    source_topic: str,
    reason: str,
    key: object,
    value: bytes | None,
    *,
    partition: int | None = None,
    offset: int | None = None,
    max_payload: int = DEFAULT_MAX_PAYLOAD,
) -> DeadLetter:
    """The dead letter of a value we gave up on, stamped now; a value above ``max_payload`` is truncated."""
    raw = value or b""
    payload = payload_text(value)
    truncated = _encoded_size(payload) > max_payload
    key_shown = key_text(key)
    return DeadLetter(
        source_topic=source_topic[:MAX_TEXT],
        reason=reason[:MAX_TEXT],
        key=key_shown[:MAX_TEXT] if key_shown is not None else None,
        payload=bounded_payload(raw, max_payload) if truncated else payload,
        failed_at=datetime.now(UTC).isoformat(),
        partition=partition,
        offset=offset,
        truncated=truncated,
        payload_size=len(raw) if truncated else None,
        payload_sha256=hashlib.sha256(raw).hexdigest() if truncated else None,
    )


def rejected_event(event: Any, reason: str, *, max_payload: int = DEFAULT_MAX_PAYLOAD) -> DeadLetter:
    """The dead letter of a Faust event we could not process, with its topic, partition and offset."""
    message = event.message
    return dead_letter(
        message.topic,
        reason,
        event.key,
        event.value,
        partition=message.partition,
        offset=message.offset,
        max_payload=max_payload,
    )


def parse_deadline_passed(raw: bytes | str | None) -> DeadlinePassed:
    """Decode and validate a ``deadline-passed`` value (plain JSON; Faust metadata optional)."""
    obj = load_object(raw)
    return DeadlinePassed(
        cafe_id=positive_int(obj, "cafe_id"),
        date=iso_date(obj, "date"),
        deadline=optional_datetime(obj, "deadline"),
    )


def parse_daily_task(raw: bytes | str | None) -> DailyTask:
    """Decode and validate a ``daily-tasks`` value."""
    obj = load_object(raw)
    task_type = obj.get("type")
    if not isinstance(task_type, str) or not task_type or len(task_type) > 100:
        raise InvalidEvent("'type' must be a non-empty string")
    return DailyTask(type=task_type, requested_at=optional_datetime(obj, "requested_at"))


#: A dead letter's own bound (its payload is bounded by ``DEAD_LETTER_MAX_PAYLOAD`` when written).
MAX_LETTER_BYTES = 1024 * 1024


def parse_dead_letter(raw: bytes | str | None) -> DeadLetter:
    """Decode a ``dead-letters`` value (ours, but input like any other)."""
    return decode_record(raw, DeadLetter, max_bytes=MAX_LETTER_BYTES, max_text=MAX_LETTER_BYTES)


def _positive(value: int, name: str) -> int:
    if not 0 < value < 2**63:
        raise InvalidEvent(f"{name!r} out of range")
    return value


def _digest_retry(obj: dict[str, Any]) -> DigestRetry:
    retry = record_of(obj, DigestRetry)
    _positive(retry.cafe_id, "cafe_id")
    _positive(retry.attempt, "attempt")
    retry.date = iso_date({"date": retry.date}, "date")
    return retry


def parse_digest_retry(raw: bytes | str | None) -> DigestRetry:
    """Decode a ``digest-retries`` value: its ids positive, its date a date (its timing is checked by the notifier)."""
    return _digest_retry(load_object(raw))


def parse_retry_or_sweep(raw: bytes | str | None) -> DigestRetry | DeliverySweep:
    """Decode a ``digest-retries`` value (parsed once): a retry, or a retention sweep (``{"sweep": true, ...}``)."""
    obj = load_object(raw)
    if "sweep" not in obj:
        return _digest_retry(obj)
    sweep = record_of(obj, DeliverySweep)
    if not sweep.sweep:
        raise InvalidEvent("'sweep' must be true")
    return sweep


def parse_batch_trigger(raw: bytes | str | None) -> BatchTrigger:
    """Decode a ``recommendation-triggers`` value."""
    return decode_record(raw, BatchTrigger)


def parse_recommendation_request(raw: bytes | str | None) -> RecommendationRequest:
    """Decode a ``recommendation-requests`` value: a positive user id and a date."""
    request = decode_record(raw, RecommendationRequest)
    _positive(request.user_id, "user_id")
    request.day = iso_date({"day": request.day}, "day")
    return request


def parse_batch_progress(raw: bytes | str | None) -> BatchProgress:
    """Decode a ``recommendation-batch-progress`` value; counts and tokens are not negative."""
    progress = decode_record(raw, BatchProgress)
    for name in ("total", "user_id", "prompt_tokens", "output_tokens", "total_tokens"):
        value = getattr(progress, name)
        if value is not None and value < 0:
            raise InvalidEvent(f"{name!r} out of range")
    return progress
