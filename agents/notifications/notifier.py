"""The service of deadline notifications: deadline events in, deliveries, table state, retries and dead letters out.

``deadline-passed`` (raw JSON, key = cafe id) → decode → one delivery attempt; a
digest that must wait becomes a ``DigestRetry`` on ``digest-retries`` (same key,
same partition count) and its state lives in the ``digest-deliveries`` table,
keyed by cafe id with one entry per date. The table also makes delivery
idempotent: a (cafe, date) with any state is never started again.

Only dates within ``EVENT_DATE_DAYS_BACK``/``_AHEAD`` of today are taken, and the table keeps
every date of that window, so no burst of dates can push a delivered one out of the duplicate
check. A retry waits for its ``not_before`` in ``streams.due_queue`` (never in the stream's loop),
so one due later never holds up those behind it; its event is acknowledged once it was made.
An event is acknowledged only once it was handled or its dead letter was written.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

import faust
from faust.types import EventT

from agents.notifications.dates import DeliveryDates, stale_cafes
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
from models.records import (
    DeadlinePassed,
    DeliverySweep,
    DigestRetry,
    InvalidEvent,
    key_text,
    parse_deadline_passed,
    parse_retry_or_sweep,
)
from streams.concurrency import KeyedPool
from streams.dead_letters import (
    UNWRITTEN,
    DeadLetterNotWritten,
    DeadLetterSink,
    decode_or_dead_letter,
    unless_unwritten,
)
from streams.due_queue import DueQueue
from streams.settings import Settings

__all__ = ["DigestNotifier"]

log = logging.getLogger(__name__)

#: Slack on a retry's ``not_before`` beyond the longest delay the worker itself schedules (jitter, clock skew).
NOT_BEFORE_SLACK = 60.0


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
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        stopping: Callable[[], bool] = lambda: False,
        assigned: Callable[[Any], bool] = lambda tp: True,
    ) -> None:
        """``sleep``, ``stopping`` and ``assigned`` are the waiting retries' (``streams.due_queue.DueQueue``)."""
        self.table = table
        self.config = config
        self.source = source
        self.sender = sender
        self.retries = retries
        self.rekey = rekey
        self.dead_letters = dead_letters
        self.digest_format = digest_format
        self.clock = clock
        self.waiting = DueQueue(
            requeue=self.requeue, clock=lambda: self.clock(), sleep=sleep, stopping=stopping, assigned=assigned
        )
        self.counts: Counter[str] = Counter()
        self.in_flight = KeyedPool(config.digest_concurrency)
        self.dates = DeliveryDates.of(config)
        #: The latest ``not_before`` a retry may name: the longest delay the worker schedules, and some slack.
        self.max_delay = max(config.notify_backoff_max, config.telegram_max_retry_after) + NOT_BEFORE_SLACK

    # -- entry points -------------------------------------------------------------------------

    async def admit(self, event: EventT, done: Callable[[EventT], Awaitable[object]]) -> None:
        """Start handling a raw ``deadline-passed`` event once a slot of ``DIGEST_CONCURRENCY`` is free.

        Events under one key are handled one after another (the duplicate check needs it);
        ``done`` (the stream's ack) is called once the event is handled, so a crash redelivers it.
        """

        async def handle() -> bool:
            return await unless_unwritten(event, self.on_deadline_event(event)) is not UNWRITTEN

        await self.in_flight.submit(event, key_text(event.key), handle, done)

    async def admit_retry(self, event: EventT, done: Callable[[EventT], Awaitable[object]]) -> None:
        """Take a raw ``digest-retries`` event: a malformed one is dead-lettered, a sweep drops quiet cafes, and
        a retry waits for its time in ``waiting`` (never in the stream's loop), then has its attempt made."""
        retry = await unless_unwritten(event, decode_or_dead_letter(event, self._parse_retry, self.dead_letters))
        if retry is UNWRITTEN:
            return
        if retry is None:
            await done(event)
            return
        if isinstance(retry, DeliverySweep):
            self.sweep(event.message.partition)
            await done(event)
            return

        async def attempt() -> None:
            await self.in_flight.submit(event, str(retry.cafe_id), lambda: self._retry_now(event, retry), done)

        await self.waiting.put(event, retry.not_before, attempt, done)

    async def join(self) -> None:
        """Wait until every waiting retry and every attempt in flight is done."""
        while len(self.waiting) or len(self.in_flight):
            await self.waiting.join()
            await self.in_flight.join()

    async def close(self) -> None:
        """Drop the retries still waiting (their events are not acknowledged: they come again)."""
        await self.waiting.close()

    async def on_deadline_event(self, event: EventT) -> None:
        """Handle one raw ``deadline-passed`` event; raises only ``DeadLetterNotWritten`` (it must come again)."""
        try:
            await self._on_deadline_event(event)
        except DeadLetterNotWritten:
            raise
        except Exception as exc:
            message = event.message
            log.exception(
                "deadline-passed: unexpected error at partition %s offset %s -> dead letter",
                message.partition,
                message.offset,
            )
            await self.dead_letters.reject(event, f"internal error: {type(exc).__name__}")

    def _parse_event(self, raw: bytes) -> DeadlinePassed:
        record = parse_deadline_passed(raw)
        self.dates.check(record.order_date, self.clock())
        return record

    def sweep(self, partition: int) -> int:
        """Drop the state of this partition's cafes with no date since ``STATE_RETENTION_DAYS``; how many.

        Must run while an event of ``partition`` is handled (the tombstones go to its changelog partition).
        """
        cutoff = self.dates.cutoff(self.clock())
        partitions = self.table.partitions or self.config.topic_partitions
        stale = stale_cafes(list(self.table.items()), partition=partition, partitions=partitions, cutoff=cutoff)
        for key in stale:
            del self.table[key]
        if stale:
            log.info(
                "digest-deliveries: partition %s: dropped %d quiet cafes (no digest since %s)",
                partition,
                len(stale),
                cutoff,
            )
        return len(stale)

    def _parse_retry(self, raw: bytes) -> DigestRetry | DeliverySweep:
        retry = parse_retry_or_sweep(raw)
        if isinstance(retry, DeliverySweep):
            return retry
        self.dates.check(date.fromisoformat(retry.date), self.clock())
        if retry.not_before > self.clock() + self.max_delay:
            raise InvalidEvent(f"not_before more than {self.max_delay:.0f} s ahead")
        return retry

    async def _retry_now(self, event: EventT, retry: DigestRetry) -> bool:
        return await unless_unwritten(event, self.on_retry(retry)) is not UNWRITTEN

    async def requeue(self, event: EventT) -> None:
        """Publish a retry not due yet again, as it came (same key: same partition), and wait for the broker."""
        delivered = await self.retries.send(key=event.key, value=event.value)
        await delivered

    async def _on_deadline_event(self, event: EventT) -> None:
        record = await decode_or_dead_letter(event, self._parse_event, self.dead_letters)
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
        """Make the attempt a due ``DigestRetry`` asks for; raises only ``DeadLetterNotWritten``."""
        try:
            await self._on_retry(retry)
        except DeadLetterNotWritten:
            raise
        except Exception as exc:
            log.exception("digest cafe=%s date=%s: unexpected error in retry -> dead letter", retry.cafe_id, retry.date)
            payload = json.dumps({"cafe_id": retry.cafe_id, "date": retry.date}).encode()
            reason = f"internal error: {type(exc).__name__}"
            await self.dead_letters.give_up(self.retries.get_topic_name(), reason, str(retry.cafe_id), payload)

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
        # How far the digest got is the table's word, not the record's; a replay starts over.
        job = DigestJob(
            cafe_id=retry.cafe_id,
            order_date=date.fromisoformat(retry.date),
            first_attempt_at=self.clock() if retry.replay else retry.first_attempt_at or retry.not_before,
            attempt=retry.attempt,
            parts_sent=0 if retry.replay or state is None else state.parts_sent,
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
        """Store ``state``; the dates before the window are dropped (no event can name them again)."""
        earliest = self.dates.window(self.clock())[0].isoformat()
        states = {**(self.table.get(key) or {}), day: state.to_dict()}
        self.table[key] = {d: states[d] for d in sorted(states) if d >= earliest}

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
            case Retry(error=error, delay=delay, chat_id=chat_id, parts_sent=sent):
                self.counts["retried"] += 1
                log.warning("%s: %s; retry in %.1fs", tag, error, delay)
                await self._later(job, job.attempt + 1, now + delay, error, chat_id, sent)
            case Deferred(reason=reason, delay=delay, chat_id=chat_id, parts_sent=sent):
                self.counts["deferred"] += 1
                log.info("%s: %s; flow control, trying again in %.1fs", tag, reason, delay)
                await self._later(job, job.attempt, now + delay, reason, chat_id, sent)
            case Failed(error=error, chat_id=chat_id, parts_sent=sent):
                log.error("%s: delivery failed: %s -> dead letter", tag, error)
                payload = json.dumps({"cafe_id": job.cafe_id, "date": day}).encode()
                # The letter first: if it cannot be written, the event comes again and finds no final state.
                await self.dead_letters.give_up(self.rekey.get_topic_name(), error, key, payload)
                self.counts["failed"] += 1
                state = DeliveryState(DeliveryStatus.FAILED, job.attempt, now, sent, None, error, chat_id, first)
                self._save(key, day, state)

    async def _later(
        self,
        job: DigestJob,
        attempt: int,
        not_before: float,
        why: str,
        chat_id: int | None,
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
                first_attempt_at=job.first_attempt_at,
            ),
        )
