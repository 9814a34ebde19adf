"""The batch planner: daily tasks and the schedule become batches, one request per active user.

``daily-tasks`` (raw JSON from the backend), the leader's crontab and its periodic
check all become ``BatchTrigger`` records on a one-partition topic, so one planner
instance owns the schedule state (table ``recommendation-runs``). A batch selects
the active users in one query and publishes one request per user, keyed by user
id, so that every worker takes a share.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import date, datetime
from zoneinfo import ZoneInfo

import faust
from faust.types import EventT

from agents.recommendations.outbox import BatchOutbox
from agents.recommendations.ports import UserSource
from agents.recommendations.schedule import latest_fire, missed
from models.records import BatchProgress, BatchTrigger, ProgressKind, TriggerReason, parse_daily_task
from streams.dead_letters import DeadLetterSink, decode_or_dead_letter

__all__ = ["GENERATE", "TRIGGER_KEY", "BatchPlanner"]

log = logging.getLogger(__name__)

GENERATE = "generate_recommendations"
TRIGGER_KEY = "daily"
SCHEDULE_KEY = "schedule"
#: Key of the recent manual triggers' sources in ``recommendation-runs``, and how many are kept.
MANUAL_KEY = "manual-sources"
KEPT_MANUAL_SOURCES = 100


class BatchPlanner:
    """Starts batches: at once for a manual trigger, once per scheduled fire otherwise (catching up a missed one)."""

    def __init__(
        self,
        *,
        runs: faust.Table,
        users: UserSource,
        outbox: BatchOutbox,
        triggers: faust.TopicT,
        dead_letters: DeadLetterSink,
        cron: str,
        zone: ZoneInfo,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.runs = runs
        self.users = users
        self.outbox = outbox
        self.triggers = triggers
        self.dead_letters = dead_letters
        self.cron = cron
        self.zone = zone
        self.clock = clock

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), self.zone)

    async def on_daily_task(self, event: EventT) -> None:
        """A backend task: ``generate_recommendations`` becomes a manual trigger; other types are ignored."""
        task = await decode_or_dead_letter(event, parse_daily_task, self.dead_letters)
        if task is None:
            return
        if task.type != GENERATE:
            log.debug("daily-tasks: ignoring task type %r", task.type)
            return
        log.info("daily-tasks: %s requested%s", GENERATE, f" at {task.requested_at}" if task.requested_at else "")
        message = event.message
        source = f"{message.topic}:{message.partition}:{message.offset}"
        trigger = BatchTrigger(reason=TriggerReason.MANUAL, requested_at=task.requested_at, source=source)
        await self.triggers.send(key=TRIGGER_KEY, value=trigger)

    async def on_trigger(self, trigger: BatchTrigger) -> None:
        if trigger.reason is TriggerReason.MANUAL:
            await self._manual(trigger.source)
        else:
            await self._scheduled(periodic=trigger.reason is TriggerReason.TICK)

    async def _manual(self, source: str | None) -> None:
        """Start a batch now, unless this daily-tasks record already started one (delivered again)."""
        seen: list[str] = self.runs.get(MANUAL_KEY) or []
        if source is not None and source in seen:
            log.info("daily-tasks: task %s already started a batch; delivered again, ignored", source)
            return
        await self.start_batch(self.now().date(), TriggerReason.MANUAL.value)
        if source is not None:
            self.runs[MANUAL_KEY] = [*seen, source][-KEPT_MANUAL_SOURCES:]

    async def _scheduled(self, *, periodic: bool) -> None:
        """Start the batch of the schedule's latest fire if it has not run (a check catches up a missed one)."""
        now = self.now()
        due = latest_fire(self.cron, now)
        state = self.runs.get(SCHEDULE_KEY)
        if state is None and periodic:
            # First start of this app: nothing was missed yet.
            self.runs[SCHEDULE_KEY] = {"last_fire": due.timestamp(), "batch_id": None}
            log.info("recommendations: schedule initialised (%s, %s)", self.cron, self.zone.key)
            return
        if not missed(state["last_fire"] if state else None, due):
            return
        kind = "catch-up" if periodic else TriggerReason.SCHEDULED.value
        if periodic:
            log.warning("recommendations: the batch due at %s did not run; catching up now", due.isoformat())
        batch_id = await self.start_batch(now.date(), kind)
        self.runs[SCHEDULE_KEY] = {"last_fire": due.timestamp(), "batch_id": batch_id}

    async def start_batch(self, day: date, trigger: str) -> str:
        """Select the active users and fan out one request per user; return the batch id."""
        user_ids = await self.users.active_user_ids(day)
        batch_id = f"{day.isoformat()}-{trigger}-{uuid.uuid4().hex[:8]}"
        log.info("recommendations batch %s: %d active users", batch_id, len(user_ids))
        started = BatchProgress(
            batch_id=batch_id,
            kind=ProgressKind.STARTED,
            at=self.clock(),
            total=len(user_ids),
            day=day.isoformat(),
            trigger=trigger,
        )
        await self.outbox.progress(started)
        for user_id in user_ids:
            await self.outbox.request(batch_id, user_id, day)
        return batch_id
