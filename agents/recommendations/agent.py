"""Agents of daily recommendations: triggers → batch planner → per-user fan-out → batch counter.

- ``daily-tasks`` (raw JSON from the backend) and the leader's crontab and catch-up
  timer all become ``BatchTrigger`` records on a one-partition topic, so one planner
  instance owns the schedule state (table ``recommendation-runs``).
- The planner selects the active users in one query and publishes one
  ``RecommendationRequest`` per user, keyed by user id: every worker takes a share.
- The per-user agent runs stats → prompt → Gemini → validation → Redis, a few users
  at a time, and reports each outcome as ``BatchProgress`` keyed by batch id.
- The counter folds progress into table ``recommendation-batches`` (one partition,
  so it is the only writer of every batch's counts).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterable, Callable
from datetime import date, datetime
from typing import Any, Protocol

from faust.types import EventT

from agents.recommendations.advice import Recommendation, UserOrderStats, build_prompt
from agents.recommendations.batches import COUNTED, apply_progress, done, progress_step, stalled
from agents.recommendations.gemini import GeminiError
from agents.recommendations.keypool import AllKeysExhausted
from agents.recommendations.schedule import latest_fire, missed
from models.records import (
    BatchProgress,
    BatchTrigger,
    InvalidEvent,
    RecommendationRequest,
    parse_daily_task,
    rejected_event,
)
from streams.app import app, settings
from streams.topics import (
    batch_progress_topic,
    batch_triggers_topic,
    daily_tasks_topic,
    dead_letters_topic,
    recommendation_requests_topic,
)

__all__ = ["RecommendationService", "recommendation_batches", "recommendation_runs", "recommendations"]

log = logging.getLogger(__name__)

GENERATE = "generate_recommendations"
MAX_RESENDS = 3
SCHEDULE_KEY = "schedule"
#: Key of the recent manual triggers' sources in ``recommendation-runs``, and how many are kept.
MANUAL_KEY = "manual-sources"
KEPT_MANUAL_SOURCES = 100
TRIGGER_KEY = "daily"

recommendation_runs = app.Table(
    "recommendation-runs",
    default=None,
    partitions=1,
    key_type=str,
    help="The daily schedule: the last crontab fire that started a batch, and that batch; recent manual triggers.",
)

recommendation_batches = app.Table(
    "recommendation-batches",
    default=None,
    partitions=1,
    key_type=str,
    help="Per-batch counts: total, succeeded, failed, skipped, started/finished times, status.",
)


recommendation_batch_users = app.Table(
    "recommendation-batch-users",
    default=None,
    partitions=1,
    key_type=str,
    help="Users already counted in a running batch ({batch_id}:{user_id}), so a redelivered result counts once.",
)


class UserSource(Protocol):
    async def active_user_ids(self, today: date) -> list[int]: ...

    async def user_stats(self, user_id: int, today: date) -> UserOrderStats | None: ...


class Cache(Protocol):
    async def generated_on(self, user_id: int) -> date | None: ...

    async def store(self, user_id: int, recommendation: Recommendation, generated_at: datetime) -> None: ...


class Recommender(Protocol):
    async def recommend(self, prompt: str) -> Recommendation: ...


class RecommendationService:
    """The domain side of the agents; ``users``, ``cache`` and ``recommender`` are set at worker start."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.users: UserSource | None = None
        self.cache: Cache | None = None
        self.recommender: Recommender | None = None
        #: Batches this process saw run out of Gemini keys: their remaining users are skipped.
        self.exhausted: set[str] = set()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), settings.zone)

    # -- triggers ------------------------------------------------------------------------------

    async def on_daily_task(self, event: EventT) -> None:
        try:
            task = parse_daily_task(event.value)
        except InvalidEvent as exc:
            log.warning(
                "daily-tasks: malformed event at partition %s offset %s: %s -> dead letter",
                event.message.partition, event.message.offset, exc,
            )
            letter = rejected_event(event, str(exc))
            await dead_letters_topic.send(key=letter.key or "", value=letter)
            return
        if task.type != GENERATE:
            log.debug("daily-tasks: ignoring task type %r", task.type)
            return
        log.info("daily-tasks: %s requested%s", GENERATE, f" at {task.requested_at}" if task.requested_at else "")
        message = event.message
        source = f"{message.topic}:{message.partition}:{message.offset}"
        trigger = BatchTrigger(reason="manual", requested_at=task.requested_at, source=source)
        await batch_triggers_topic.send(key=TRIGGER_KEY, value=trigger)

    async def on_trigger(self, trigger: BatchTrigger) -> None:
        """Start a batch for a manual trigger, or for a scheduled fire that has not run yet."""
        now = self.now()
        if trigger.reason == "manual":
            seen: list[str] = recommendation_runs.get(MANUAL_KEY) or []
            if trigger.source is not None and trigger.source in seen:
                log.info("daily-tasks: task %s already started a batch; delivered again, ignored", trigger.source)
                return
            await self.start_batch(now.date(), "manual")
            if trigger.source is not None:
                recommendation_runs[MANUAL_KEY] = [*seen, trigger.source][-KEPT_MANUAL_SOURCES:]
            return
        if trigger.reason == "tick":
            await self.resend_stalled()
        due = latest_fire(settings.recommendations_cron, now)
        state = recommendation_runs.get(SCHEDULE_KEY)
        if state is None and trigger.reason == "tick":
            # First start of this app: nothing was missed yet.
            recommendation_runs[SCHEDULE_KEY] = {"last_fire": due.timestamp(), "batch_id": None}
            log.info("recommendations: schedule initialised (%s, %s)", settings.recommendations_cron, settings.timezone)
            return
        if not missed(state["last_fire"] if state else None, due):
            return
        kind = "scheduled" if trigger.reason == "scheduled" else "catch-up"
        if kind == "catch-up":
            log.warning("recommendations: the batch due at %s did not run; catching up now", due.isoformat())
        batch_id = await self.start_batch(now.date(), kind)
        recommendation_runs[SCHEDULE_KEY] = {"last_fire": due.timestamp(), "batch_id": batch_id}

    async def start_batch(self, day: date, trigger: str) -> str:
        """Select the active users and fan out one request per user; return the batch id."""
        if self.users is None:
            raise RuntimeError("worker resources not ready")
        user_ids = await self.users.active_user_ids(day)
        batch_id = f"{day.isoformat()}-{trigger}-{uuid.uuid4().hex[:8]}"
        log.info("recommendations batch %s: %d active users", batch_id, len(user_ids))
        await self._progress(
            BatchProgress(
                batch_id=batch_id, kind="started", at=self.clock(), total=len(user_ids), day=day.isoformat(),
                trigger=trigger,
            )
        )
        for user_id in user_ids:
            await self._request(batch_id, user_id, day)
        return batch_id

    async def resend_stalled(self) -> None:
        """Send again the requests of running batches whose users stopped reporting.

        A request can be lost when a worker dies in a rebalance (faust-streaming
        may drop records it fetched for a partition it just took over); users
        already done are not counted twice, and after ``MAX_RESENDS`` rounds the
        users still missing are counted as failed so the batch ends.
        """
        now = self.clock()
        for counts in list(recommendation_batches.values()):
            if not stalled(counts, now, settings.recommendations_stall_after) or self.users is None:
                continue
            batch_id, day = counts["batch_id"], date.fromisoformat(counts["day"])
            prefix = f"{batch_id}:"
            counted = {int(k[len(prefix) :]) for k in recommendation_batch_users if k.startswith(prefix)}
            missing = [u for u in await self.users.active_user_ids(day) if u not in counted]
            if counts["resent"] >= MAX_RESENDS or not missing:
                log.error("recommendations batch %s: %d users never reported; batch abandoned", batch_id,
                          counts["total"] - done(counts))
                await self._progress(BatchProgress(
                    batch_id=batch_id, kind="abandoned", at=now, reason="users never reported after resends"
                ))
                continue
            log.warning("recommendations batch %s stalled: sending %d requests again", batch_id, len(missing))
            await self._progress(BatchProgress(batch_id=batch_id, kind="resent", at=now, total=len(missing)))
            for user_id in missing:
                await self._request(batch_id, user_id, day)

    async def _progress(self, event: BatchProgress) -> None:
        await batch_progress_topic.send(key=event.batch_id, value=event)

    async def _request(self, batch_id: str, user_id: int, day: date) -> None:
        await recommendation_requests_topic.send(
            key=str(user_id), value=RecommendationRequest(batch_id=batch_id, user_id=user_id, day=day.isoformat())
        )

    # -- one user --------------------------------------------------------------------------------

    async def recommend(self, request: RecommendationRequest) -> list[BatchProgress]:
        """Make, validate and cache one user's recommendation; the progress to report. Never raises."""
        tag = f"recommendation batch={request.batch_id} user={request.user_id}"

        def progress(kind: str, reason: str | None = None) -> BatchProgress:
            return BatchProgress(
                batch_id=request.batch_id, kind=kind, at=self.clock(), user_id=request.user_id, reason=reason
            )

        if request.batch_id in self.exhausted:
            return [progress("skipped", "all Gemini keys exhausted")]
        if self.users is None or self.cache is None:
            log.error("%s: worker resources not ready", tag)
            return [progress("failed", "worker resources not ready")]
        if self.recommender is None:
            return self._exhaust(request, tag, "GEMINI_API_KEYS is not set", progress)
        try:
            day = date.fromisoformat(request.day)
            if await self.cache.generated_on(request.user_id) == day:
                log.info("%s: already made today, skipped", tag)
                return [progress("skipped", "already made today")]
            stats = await self.users.user_stats(request.user_id, day)
            if stats is None:
                log.info("%s: no orders in the window, skipped", tag)
                return [progress("skipped", "no orders")]
            recommendation = await self.recommender.recommend(build_prompt(stats))
            await self.cache.store(request.user_id, recommendation, self.now())
        except AllKeysExhausted as exc:
            return self._exhaust(request, tag, str(exc), progress)
        except GeminiError as exc:
            log.warning("%s: failed: %s", tag, exc)
            return [progress("failed", str(exc)[:300])]
        except Exception as exc:  # Redis, PostgreSQL: counted, the batch goes on
            log.error("%s: failed: %s: %s", tag, type(exc).__name__, str(exc)[:200])
            return [progress("failed", type(exc).__name__)]
        log.info("%s: cached", tag)
        return [progress("succeeded")]

    def _exhaust(
        self, request: RecommendationRequest, tag: str, reason: str, progress: Callable[..., BatchProgress]
    ) -> list[BatchProgress]:
        first = request.batch_id not in self.exhausted
        self.exhausted.add(request.batch_id)
        if first:
            log.error("%s: every Gemini key is exhausted (%s): batch stopped, remaining users skipped", tag, reason)
        events = [progress("stopped", f"all Gemini keys exhausted: {reason}")] if first else []
        return [*events, progress("skipped", "all Gemini keys exhausted")]

    # -- counting --------------------------------------------------------------------------------

    def on_progress(self, event: BatchProgress) -> None:
        if event.user_id is not None and event.kind in COUNTED:
            user_key = f"{event.batch_id}:{event.user_id}"
            if user_key in recommendation_batch_users:
                log.info("recommendation batch=%s user=%s: already counted", event.batch_id, event.user_id)
                return
            recommendation_batch_users[user_key] = event.kind
        before = recommendation_batches.get(event.batch_id)
        counts = apply_progress(before, event)
        recommendation_batches[event.batch_id] = counts
        total, finished = counts["total"], counts["finished_at"] is not None
        tally = f"{counts['succeeded']} ok, {counts['failed']} failed, {counts['skipped']} skipped"
        if finished and (before is None or before["finished_at"] is None):
            seconds = counts["finished_at"] - (counts["started_at"] or counts["finished_at"])
            log.info(
                "recommendations batch %s %s: %d users in %.1fs (%s)",
                event.batch_id, counts["status"], total, seconds, tally,
            )
            prefix = f"{event.batch_id}:"
            for user_key in [k for k in recommendation_batch_users if k.startswith(prefix)]:
                del recommendation_batch_users[user_key]
        elif event.kind in ("succeeded", "failed", "skipped") and done(counts) % progress_step(total) == 0:
            log.info("recommendations batch %s: %d/%d done (%s)", event.batch_id, done(counts), total, tally)


recommendations = RecommendationService()


async def _send_trigger(reason: str) -> None:
    """From a timer: never raise (an exception in a timer stops the worker)."""
    try:
        await batch_triggers_topic.send(key=TRIGGER_KEY, value=BatchTrigger(reason=reason))
    except Exception:
        log.exception("recommendations: could not send the %s trigger", reason)


@app.crontab(settings.recommendations_cron, timezone=settings.zone, on_leader=True)
async def schedule_daily_recommendations() -> None:
    """Start the daily recommendation batch at RECOMMENDATIONS_CRON (leader only)."""
    await _send_trigger("scheduled")


@app.timer(interval=settings.recommendations_check_interval, on_leader=True)
async def catch_up_missed_recommendations() -> None:
    """Start the daily batch if its scheduled time passed while no worker ran (leader only)."""
    await _send_trigger("tick")


@app.agent(daily_tasks_topic, name="accept-daily-task")
async def accept_daily_task(stream: AsyncIterable[Any]) -> None:
    """Turn the backend's daily tasks into batch triggers; dead-letter malformed ones."""
    async for event in stream.events():  # type: ignore[attr-defined]
        try:
            await recommendations.on_daily_task(event)
        except Exception:
            log.exception("daily-tasks: unexpected error at offset %s", event.message.offset)


@app.agent(batch_triggers_topic, name="plan-recommendation-batch")
async def plan_recommendation_batch(stream: AsyncIterable[BatchTrigger]) -> None:
    """Start a recommendation batch when one is requested or due."""
    async for trigger in stream:
        try:
            await recommendations.on_trigger(trigger)
        except Exception as exc:
            # The next tick retries a scheduled batch; a manual one must be requested again.
            log.error("recommendations: %s trigger failed: %s: %s", trigger.reason, type(exc).__name__, exc)


@app.agent(recommendation_requests_topic, name="recommend-for-user")
async def recommend_for_user(stream: AsyncIterable[RecommendationRequest]) -> None:
    """Make one active user's recommendation (a few users at a time) and report the outcome."""
    async for requests in stream.take(settings.recommendation_concurrency, within=0.2):  # type: ignore[attr-defined]
        outcomes = await asyncio.gather(*(recommendations.recommend(r) for r in requests))
        for events in outcomes:
            for event in events:
                await recommendations._progress(event)


@app.agent(batch_progress_topic, name="count-batch-progress")
async def count_batch_progress(stream: AsyncIterable[BatchProgress]) -> None:
    """Keep each batch's counts and log its progress."""
    async for event in stream:
        try:
            recommendations.on_progress(event)
        except Exception:
            log.exception("recommendations: bad progress event for batch %s", event.batch_id)
