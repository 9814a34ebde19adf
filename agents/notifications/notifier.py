"""The service of deadline notifications: deadline events in, deliveries, table state, retries and dead letters out.

``deadline-passed`` (raw JSON, key = cafe id) → decode → one delivery attempt; a
digest that must wait becomes a ``DigestRetry`` on ``digest-retries`` (same key,
same partition count) and its state lives in the ``digest-deliveries`` table,
keyed by cafe id with one entry per date. The table also makes delivery
idempotent: a (cafe, date) with any state is never started again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import date

import faust
from faust.types import EventT

from agents.notifications.delivery import (
    Deferred,
    DeliveryState,
    DeliveryStatus,
    DigestJob,
    DigestSender,
    DigestSource,
    Failed,
    Outcome,
    Retry,
    Sent,
    Skipped,
    deliver,
    retry_delay,
)
from agents.notifications.i18n import DigestFormat
from models.records import DigestRetry, dead_letter, key_text, parse_deadline_passed, rejected_event
from streams.concurrency import KeyedLocks, TaskPool
from streams.dead_letters import DeadLetterSink, decode_or_dead_letter
from streams.settings import Settings

__all__ = ["KEPT_DATES", "DigestNotifier"]

log = logging.getLogger(__name__)

#: Dates of delivery state kept per cafe (bounds the table to one small entry per cafe).
KEPT_DATES = 14


class DigestNotifier:
    """Turns deadline events into deliveries, and outcomes into table state, retries and dead letters.

    Built by the wiring (``streams.worker``) with every port it needs. Must be called from
    inside an agent (table writes go to the current event's partition).
    """

    def __init__(
        self,
        *,
        table: faust.Table,
        config: Settings,
        source: DigestSource,
        sender: DigestSender,
        retries: faust.TopicT,
        rekey: faust.TopicT,
        dead_letters: DeadLetterSink,
        digest_format: DigestFormat,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table = table
        self.config = config
        self.source = source
        self.sender = sender
        self.retries = retries
        self.rekey = rekey
        self.dead_letters = dead_letters
        self.digest_format = digest_format
        self.clock = clock
        self.counts: Counter[str] = Counter()
        self.in_flight = TaskPool(config.digest_concurrency)
        self._cafes = KeyedLocks()

    # -- entry points -------------------------------------------------------------------------

    async def admit(self, event: EventT, done: Callable[[EventT], Awaitable[object]]) -> None:
        """Start handling a raw ``deadline-passed`` event once a slot of ``DIGEST_CONCURRENCY`` is free.

        Events under one key are handled one after another (the duplicate check needs it);
        ``done`` (the stream's ack) is called once the event is handled, so a crash redelivers it.
        """

        async def handle() -> None:
            try:
                async with self._cafes.hold(key_text(event.key)):
                    await self.on_deadline_event(event)
            finally:
                await done(event)

        await self.in_flight.start(handle)

    async def on_deadline_event(self, event: EventT) -> None:
        """Handle one raw ``deadline-passed`` event; never raises (an exception would lose it)."""
        try:
            await self._on_deadline_event(event)
        except Exception as exc:
            message = event.message
            log.exception(
                "deadline-passed: unexpected error at partition %s offset %s -> dead letter",
                message.partition,
                message.offset,
            )
            await self.dead_letters.send(rejected_event(event, f"internal error: {type(exc).__name__}"))

    async def _on_deadline_event(self, event: EventT) -> None:
        record = await decode_or_dead_letter(event, parse_deadline_passed, self.dead_letters)
        if record is None:
            return
        key = str(record.cafe_id)
        if key_text(event.key) != key:
            # The table is partitioned by cafe id: put the event where its state lives.
            log.warning("deadline-passed: cafe %s arrived with key %r; re-keyed", key, key_text(event.key))
            await self.rekey.send(key=key.encode(), value=event.value)
            return
        if record.date in (self.table.get(key) or ()):
            self.counts["duplicates"] += 1
            log.info("digest cafe=%s date=%s: already handled, duplicate event ignored", key, record.date)
            return
        job = DigestJob(cafe_id=record.cafe_id, order_date=record.order_date, first_attempt_at=self.clock())
        await self._apply(job, await self._deliver(job))

    async def on_retry(self, retry: DigestRetry) -> None:
        """Make the attempt a ``DigestRetry`` asks for, once it is due; never raises."""
        try:
            await self._on_retry(retry)
        except Exception as exc:
            log.exception("digest cafe=%s date=%s: unexpected error in retry -> dead letter", retry.cafe_id, retry.date)
            payload = json.dumps({"cafe_id": retry.cafe_id, "date": retry.date}).encode()
            reason = f"internal error: {type(exc).__name__}"
            letter = dead_letter(self.retries.get_topic_name(), reason, str(retry.cafe_id), payload)
            await self.dead_letters.send(letter)

    async def _on_retry(self, retry: DigestRetry) -> None:
        key = str(retry.cafe_id)
        raw = (self.table.get(key) or {}).get(retry.date)
        state = None if raw is None else DeliveryState.from_dict(raw)
        if retry.replay:
            if state is not None and state.status is DeliveryStatus.SENT:
                log.info("digest cafe=%s date=%s: replay ignored, the digest was sent", key, retry.date)
                return
            log.info("digest cafe=%s date=%s: replayed from the dead letters", key, retry.date)
        elif state is None or state.status is not DeliveryStatus.RETRYING or state.next_attempt_at != retry.not_before:
            # Only the record the state last scheduled is current (its not_before is unique to it).
            log.info("digest cafe=%s date=%s: stale retry #%s ignored", key, retry.date, retry.attempt)
            return
        wait = retry.not_before - self.clock()
        if wait > 0:
            await asyncio.sleep(wait)
        job = DigestJob(
            cafe_id=retry.cafe_id,
            order_date=date.fromisoformat(retry.date),
            first_attempt_at=self.clock() if retry.replay else retry.first_attempt_at or retry.not_before,
            attempt=retry.attempt,
            chat_id=retry.chat_id,
            parts=tuple(retry.parts) if retry.parts else None,
            parts_sent=retry.parts_sent,
        )
        await self._apply(job, await self._deliver(job))

    # -- internals ----------------------------------------------------------------------------

    async def _deliver(self, job: DigestJob) -> Outcome:
        return await deliver(
            job,
            source=self.source,
            sender=self.sender,
            backoff=self._backoff,
            max_wait=self.config.telegram_max_wait,
            fmt=self.digest_format,
        )

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        return retry_delay(
            attempt,
            base=self.config.notify_backoff_base,
            cap=self.config.notify_backoff_max,
            retry_after=retry_after,
        )

    def _save(self, key: str, day: str, state: DeliveryState) -> None:
        states = {**(self.table.get(key) or {}), day: state.to_dict()}
        self.table[key] = {d: states[d] for d in sorted(states)[-KEPT_DATES:]}

    def _give_up(self, job: DigestJob, outcome: Outcome, now: float) -> Outcome:
        """A ``Failed`` for a ``Retry`` out of attempts, or any later one past ``DIGEST_GIVE_UP_AFTER``."""
        if not isinstance(outcome, Retry | Deferred):
            return outcome
        why = outcome.error if isinstance(outcome, Retry) else outcome.reason
        limit = self.config.digest_give_up_after * 3600
        if now + outcome.delay - job.first_attempt_at > limit:
            hours = (now - job.first_attempt_at) / 3600
            return Failed(f"gave up after {hours:.1f} h: {why}", outcome.chat_id, outcome.parts_sent)
        if isinstance(outcome, Retry) and job.attempt >= self.config.notify_max_attempts:
            return Failed(f"gave up after {job.attempt} attempts: {why}", outcome.chat_id, outcome.parts_sent)
        return outcome

    async def _apply(self, job: DigestJob, outcome: Outcome) -> None:
        key, day, now = str(job.cafe_id), job.order_date.isoformat(), self.clock()
        tag = f"digest cafe={key} date={day} attempt={job.attempt}"
        first = job.first_attempt_at
        match self._give_up(job, outcome, now):
            case Sent(chat_id=chat_id, parts=parts):
                self.counts["sent"] += 1
                log.info("%s: sent to chat %s in %s part(s)", tag, chat_id, parts)
                self._save(key, day, DeliveryState(DeliveryStatus.SENT, job.attempt, now, parts, chat_id=chat_id))
            case Skipped(reason=reason):
                self.counts["skipped"] += 1
                level = logging.WARNING if reason == "cafe not found" else logging.INFO
                log.log(level, "%s: nothing sent (%s)", tag, reason)
                self._save(key, day, DeliveryState(DeliveryStatus.SKIPPED, job.attempt, now, last_error=reason))
            case Retry(error=error, delay=delay, chat_id=chat_id, parts=parts, parts_sent=sent):
                self.counts["retried"] += 1
                log.warning("%s: %s; retry in %.1fs", tag, error, delay)
                await self._later(job, job.attempt + 1, now + delay, error, chat_id, parts, sent)
            case Deferred(reason=reason, delay=delay, chat_id=chat_id, parts=parts, parts_sent=sent):
                self.counts["deferred"] += 1
                log.info("%s: %s; flow control, trying again in %.1fs", tag, reason, delay)
                await self._later(job, job.attempt, now + delay, reason, chat_id, parts, sent)
            case Failed(error=error, chat_id=chat_id, parts_sent=sent):
                self.counts["failed"] += 1
                log.error("%s: delivery failed: %s -> dead letter", tag, error)
                state = DeliveryState(DeliveryStatus.FAILED, job.attempt, now, sent, None, error, chat_id, first)
                self._save(key, day, state)
                payload = json.dumps({"cafe_id": job.cafe_id, "date": day}).encode()
                await self.dead_letters.send(dead_letter(self.rekey.get_topic_name(), error, key, payload))

    async def _later(
        self,
        job: DigestJob,
        attempt: int,
        not_before: float,
        why: str,
        chat_id: int | None,
        parts: tuple[str, ...] | None,
        parts_sent: int,
    ) -> None:
        """Record that the digest waits until ``not_before`` and schedule that ``attempt`` on the retry topic."""
        key, day = str(job.cafe_id), job.order_date.isoformat()
        state = DeliveryState(
            DeliveryStatus.RETRYING,
            job.attempt,
            self.clock(),
            parts_sent,
            not_before,
            why,
            chat_id,
            job.first_attempt_at,
        )
        self._save(key, day, state)
        await self.retries.send(
            key=key,
            value=DigestRetry(
                cafe_id=job.cafe_id,
                date=day,
                attempt=attempt,
                not_before=not_before,
                chat_id=chat_id,
                parts=list(parts) if parts else None,
                parts_sent=parts_sent,
                first_attempt_at=job.first_attempt_at,
            ),
        )
