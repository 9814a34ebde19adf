"""Delivering one digest: the policy, free of Kafka, with the store and sender as ports.

``deliver`` loads (or continues) a digest, sends its parts and says what happened
as an outcome; the agent turns outcomes into table state, retries and dead letters.

Two kinds of "later": ``Retry`` is a failure (5xx, timeout, database) and uses up an
attempt of ``NOTIFY_MAX_ATTEMPTS``; ``Deferred`` is flow control (a 429, or a throttle
slot further than ``max_wait``) and uses up none. Both end only at ``give_up_after``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import date
from enum import StrEnum
from typing import Any, Protocol

from agents.notifications.digest import CafeDigest, render_digest, skip_reason
from agents.notifications.i18n import DEFAULT_FORMAT, DigestFormat
from agents.notifications.telegram_errors import (
    TelegramChatMigrated,
    TelegramError,
    TelegramRetryAfter,
    TelegramUnauthorized,
)
from agents.notifications.throttle import ThrottleWait

__all__ = [
    "MAX_RATE_LIMITS_IN_PLACE",
    "Deferred",
    "DeliveryState",
    "DeliveryStatus",
    "DigestJob",
    "DigestSender",
    "DigestSource",
    "Failed",
    "Outcome",
    "Retry",
    "Sent",
    "Skipped",
    "deliver",
    "retry_delay",
]

log = logging.getLogger(__name__)

#: 429s answered in one handling by waiting out the bot's pause and sending again; past them the digest is deferred.
MAX_RATE_LIMITS_IN_PLACE = 3


class DigestSource(Protocol):
    async def load_digest(self, cafe_id: int, order_date: date) -> CafeDigest | None: ...

    async def move_chat(self, cafe_id: int, old_chat_id: int, new_chat_id: int) -> bool: ...


class DigestSender(Protocol):
    async def send_message(self, chat_id: int, text: str, *, max_wait: float | None = None) -> int: ...


@dataclass(frozen=True, slots=True)
class DigestJob:
    """One attempt at a digest, rendered from the database each time; ``parts_sent`` of it went out already.

    ``first_attempt_at`` (epoch seconds) starts the clock of ``DIGEST_GIVE_UP_AFTER``.
    """

    cafe_id: int
    order_date: date
    first_attempt_at: float
    attempt: int = 1
    parts_sent: int = 0


@dataclass(frozen=True, slots=True)
class Sent:
    chat_id: int
    parts: int


@dataclass(frozen=True, slots=True)
class Skipped:
    reason: str


@dataclass(frozen=True, slots=True)
class Retry:
    error: str
    delay: float
    chat_id: int | None = None
    parts_sent: int = 0


@dataclass(frozen=True, slots=True)
class Deferred:
    """Flow control (Telegram's 429, the bot's budget): try again after ``delay``, no attempt used."""

    reason: str
    delay: float
    chat_id: int | None = None
    parts_sent: int = 0


@dataclass(frozen=True, slots=True)
class Failed:
    error: str
    chat_id: int | None = None
    parts_sent: int = 0


Outcome = Sent | Skipped | Retry | Deferred | Failed


class DeliveryStatus(StrEnum):
    SENT = "sent"
    SKIPPED = "skipped"
    RETRYING = "retrying"  # waiting for its next attempt on the retry topic (a failure or flow control)
    FAILED = "failed"  # dead-lettered


@dataclass(slots=True)
class DeliveryState:
    """What we know of one (cafe, date) digest: the table's value, one per date."""

    status: DeliveryStatus
    attempts: int
    updated_at: float
    parts_sent: int = 0
    next_attempt_at: float | None = None
    last_error: str | None = None
    chat_id: int | None = None
    first_attempt_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: its deep copies cost more than the rest of the table write.
        return {name: getattr(self, name) for name in _STATE_FIELDS}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DeliveryState:
        state = cls(**{f.name: raw[f.name] for f in fields(cls) if f.name in raw})
        state.status = DeliveryStatus(state.status)
        return state


_STATE_FIELDS = tuple(f.name for f in fields(DeliveryState))


def retry_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds before the next attempt: Telegram's ``retry_after`` plus a little jitter when given,
    else exponential backoff (``base * 2**(attempt-1)``, capped) with equal jitter."""
    if retry_after is not None:
        return retry_after + min(1.0, retry_after * 0.1) * rand()
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    return ceiling / 2 + ceiling / 2 * rand()


async def deliver(
    job: DigestJob,
    *,
    source: DigestSource,
    sender: DigestSender,
    backoff: Callable[[int, float | None], float],
    max_wait: float | None = None,
    fmt: DigestFormat = DEFAULT_FORMAT,
) -> Outcome:
    """Try to deliver the digest of ``job``; never raises for expected failures.

    ``backoff(attempt, retry_after)`` gives the delay of a retry; a part whose
    throttle slot is more than ``max_wait`` away is deferred. A 429 has paused the
    sender's budget already: the part is sent again once the pause allows, up to
    ``MAX_RATE_LIMITS_IN_PLACE`` times, then deferred. ``fmt`` is the digest's language and currency.
    """
    try:
        digest = await source.load_digest(job.cafe_id, job.order_date)
    except Exception as exc:  # the database is an outside system: any failure is retried
        return Retry(f"database: {type(exc).__name__}", backoff(job.attempt, None), parts_sent=job.parts_sent)
    reason = skip_reason(digest)
    if reason is not None or digest is None:
        return Skipped(reason or "cafe not found")
    chat_id, parts = digest.chat_id, tuple(render_digest(digest, fmt=fmt))
    assert chat_id is not None  # skip_reason checked it

    sent = job.parts_sent
    migrated = False
    rate_limited = 0
    while sent < len(parts):
        try:
            await sender.send_message(chat_id, parts[sent], max_wait=max_wait)
        except TelegramChatMigrated as exc:
            if migrated:
                return Failed(f"chat migrated twice: {exc}", chat_id, sent)
            migrated = True
            log.warning("cafe %s: chat %s migrated to %s", job.cafe_id, chat_id, exc.new_chat_id)
            try:
                await source.move_chat(job.cafe_id, chat_id, exc.new_chat_id)
            except Exception as db_exc:  # sending to the new chat matters more than recording it
                log.error("cafe %s: could not persist chat id: %s", job.cafe_id, type(db_exc).__name__)
            chat_id = exc.new_chat_id
            continue
        except ThrottleWait as exc:
            return Deferred(str(exc), exc.delay, chat_id, sent)
        except TelegramRetryAfter as exc:
            rate_limited += 1
            if rate_limited > MAX_RATE_LIMITS_IN_PLACE:
                return Deferred(str(exc), backoff(job.attempt, exc.retry_after), chat_id, sent)
            continue
        except TelegramUnauthorized as exc:
            return Failed(str(exc), chat_id, sent)
        except TelegramError as exc:
            if exc.retryable:
                return Retry(str(exc), backoff(job.attempt, None), chat_id, sent)
            return Failed(str(exc), chat_id, sent)
        sent += 1
    return Sent(chat_id, len(parts))
