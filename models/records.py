"""Typed records of every topic, and strict decoding of the external ones.

External topics (``deadline-passed``, ``daily-tasks``) are consumed as raw bytes
and decoded here, so a malformed event becomes an :class:`InvalidEvent` that the
agent can dead-letter, instead of a decode error inside Faust's stream iterator
(which would crash the agent and lose the event).
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

import faust

__all__ = [
    "USER_OUTCOMES",
    "BatchProgress",
    "BatchTrigger",
    "DailyTask",
    "DeadLetter",
    "DeadlinePassed",
    "DigestRetry",
    "InvalidEvent",
    "ProgressKind",
    "RecommendationRequest",
    "TriggerReason",
    "dead_letter",
    "key_text",
    "parse_daily_task",
    "parse_deadline_passed",
    "payload_text",
    "rejected_event",
]

MAX_EVENT_BYTES = 64 * 1024
MIN_YEAR, MAX_YEAR = 2000, 2100


class InvalidEvent(ValueError):
    """An external event that cannot be processed; the message says why."""


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

    ``parts`` holds the rendered messages when they were rendered already, so a
    retry continues the same digest from ``parts_sent`` instead of re-reading it.
    ``replay`` marks a dead letter sent back by an operator: it starts over at
    attempt 1 whatever the state, unless the digest was sent.
    """

    cafe_id: int
    date: str
    attempt: int  # the attempt this record will make
    not_before: float  # epoch seconds
    chat_id: int | None = None
    parts: list[str] | None = None
    parts_sent: int = 0
    replay: bool = False
    first_attempt_at: float | None = None  # epoch seconds; None in records written before it existed


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
    """Something we gave up on, with enough to inspect and replay it."""

    source_topic: str
    reason: str
    key: str | None
    payload: str  # the original value: UTF-8 text, or "base64:..." for binary
    failed_at: str  # ISO-8601 UTC
    partition: int | None = None
    offset: int | None = None


def payload_text(raw: bytes | None) -> str:
    """The raw value as text for a dead letter (base64 when it is not UTF-8)."""
    if raw is None:
        return ""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(raw).decode("ascii")


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
) -> DeadLetter:
    """The dead letter of a value we gave up on, stamped now."""
    return DeadLetter(
        source_topic=source_topic,
        reason=reason,
        key=key_text(key),
        payload=payload_text(value),
        failed_at=datetime.now(UTC).isoformat(),
        partition=partition,
        offset=offset,
    )


def rejected_event(event: Any, reason: str) -> DeadLetter:
    """The dead letter of a Faust event we could not process, with its topic, partition and offset."""
    message = event.message
    return dead_letter(
        message.topic, reason, event.key, event.value, partition=message.partition, offset=message.offset
    )


def _load_object(raw: bytes | str | None) -> dict[str, Any]:
    if raw is None or len(raw) == 0:
        raise InvalidEvent("empty value")
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEvent(f"value too large ({len(raw)} bytes)")
    try:
        obj = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidEvent(f"not JSON: {exc.__class__.__name__}") from None
    if not isinstance(obj, dict):
        raise InvalidEvent(f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _positive_int(obj: dict[str, Any], field: str) -> int:
    if field not in obj:
        raise InvalidEvent(f"missing field {field!r}")
    value = obj[field]
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEvent(f"{field!r} must be an integer, got {type(value).__name__}")
    if not 0 < value < 2**63:
        raise InvalidEvent(f"{field!r} out of range")
    return value


def _iso_date(obj: dict[str, Any], field: str) -> str:
    if field not in obj:
        raise InvalidEvent(f"missing field {field!r}")
    value = obj[field]
    if not isinstance(value, str) or len(value) != 10:
        raise InvalidEvent(f"{field!r} must be a YYYY-MM-DD string")
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise InvalidEvent(f"{field!r} is not a valid date") from None
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        raise InvalidEvent(f"{field!r} out of range")
    return parsed.isoformat()


def _optional_datetime(obj: dict[str, Any], field: str) -> str | None:
    value = obj.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise InvalidEvent(f"{field!r} must be an ISO-8601 datetime string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidEvent(f"{field!r} is not a valid ISO-8601 datetime") from None
    return parsed.isoformat()


def parse_deadline_passed(raw: bytes | str | None) -> DeadlinePassed:
    """Decode and validate a ``deadline-passed`` value (plain JSON; Faust metadata optional)."""
    obj = _load_object(raw)
    return DeadlinePassed(
        cafe_id=_positive_int(obj, "cafe_id"),
        date=_iso_date(obj, "date"),
        deadline=_optional_datetime(obj, "deadline"),
    )


def parse_daily_task(raw: bytes | str | None) -> DailyTask:
    """Decode and validate a ``daily-tasks`` value."""
    obj = _load_object(raw)
    task_type = obj.get("type")
    if not isinstance(task_type, str) or not task_type or len(task_type) > 100:
        raise InvalidEvent("'type' must be a non-empty string")
    return DailyTask(type=task_type, requested_at=_optional_datetime(obj, "requested_at"))
