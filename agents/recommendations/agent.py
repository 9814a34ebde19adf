"""Agents of daily recommendations: thin loops over the services the worker builds at start.

triggers → planner (``BatchPlanner``) → one request per user → ``UserAdvisor`` on every
worker → progress → counter (``BatchCounter``). The leader's crontab starts the daily
batch; its periodic check catches up a missed one and sweeps for stalled batches.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable
from dataclasses import dataclass
from typing import Any

from agents.recommendations.advisor import UserAdvisor
from agents.recommendations.counter import BatchCounter
from agents.recommendations.gemini import GeminiRecommender
from agents.recommendations.planner import TRIGGER_KEY, BatchPlanner
from models.records import (
    BatchProgress,
    BatchTrigger,
    ProgressKind,
    TriggerReason,
    parse_batch_progress,
    parse_batch_trigger,
)
from streams.app import app, settings
from streams.binding import Late
from streams.dead_letters import decode_or_dead_letter, unless_unwritten
from streams.topics import batch_progress_topic, batch_triggers_topic, daily_tasks_topic, recommendation_requests_topic

__all__ = [
    "Recommendations",
    "recommendation_batch_users",
    "recommendation_batches",
    "recommendation_runs",
    "recommendations",
]

log = logging.getLogger(__name__)

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


@dataclass(frozen=True, slots=True)
class Recommendations:
    """What the recommendation agents, views and metrics use, built at worker start."""

    planner: BatchPlanner
    advisor: UserAdvisor
    counter: BatchCounter
    gemini: GeminiRecommender | None  # None: GEMINI_API_KEYS is not set


#: Bound by ``streams.worker`` at worker start.
recommendations: Late[Recommendations] = Late("daily recommendations")


@app.crontab(settings.recommendations_cron, timezone=settings.zone, on_leader=True)
async def schedule_daily_recommendations() -> None:
    """Start the daily recommendation batch at RECOMMENDATIONS_CRON (leader only)."""
    try:
        await batch_triggers_topic.send(key=TRIGGER_KEY, value=BatchTrigger(reason=TriggerReason.SCHEDULED))
    except Exception:  # an exception in a crontab stops the worker; the periodic check catches up
        log.exception("recommendations: could not send the scheduled trigger")


async def send_periodic_check() -> None:
    """Ask the planner to catch up a missed scheduled batch, and the counter to sweep for stalled ones."""
    try:
        await batch_triggers_topic.send(key=TRIGGER_KEY, value=BatchTrigger(reason=TriggerReason.TICK))
        sweep = BatchProgress(batch_id="sweep", kind=ProgressKind.SWEEP, at=0.0)
        await batch_progress_topic.send(key=sweep.batch_id, value=sweep)
    except Exception:  # an exception in a timer stops the worker; the next tick tries again
        log.exception("recommendations: could not send the periodic check")


@app.timer(interval=settings.recommendations_check_interval, on_leader=True)
async def check_recommendation_batches() -> None:
    """Catch up a scheduled batch missed while no worker ran, and sweep for stalled batches (leader only)."""
    await send_periodic_check()


@app.agent(daily_tasks_topic, name="accept-daily-task")
async def accept_daily_task(stream: AsyncIterable[Any]) -> None:
    """Turn the backend's daily tasks into batch triggers; dead-letter malformed ones."""
    async for event in stream.events():  # type: ignore[attr-defined]
        try:
            await recommendations().planner.on_daily_task(event)
        except Exception:
            log.exception("daily-tasks: unexpected error at offset %s", event.message.offset)


@app.agent(batch_triggers_topic, name="plan-recommendation-batch")
async def plan_recommendation_batch(stream: AsyncIterable[Any]) -> None:
    """Start a recommendation batch when one is requested or due."""
    async for event in stream.events():  # type: ignore[attr-defined]
        planner = recommendations().planner
        try:
            decoding = decode_or_dead_letter(event, parse_batch_trigger, planner.dead_letters)
            trigger = await unless_unwritten(event, decoding)
            if isinstance(trigger, BatchTrigger):
                await planner.on_trigger(trigger)
        except Exception as exc:
            # The next tick retries a scheduled batch; a manual one must be requested again.
            log.error("recommendations: trigger failed: %s: %s", type(exc).__name__, exc)


@app.agent(recommendation_requests_topic, name="recommend-for-user")
async def recommend_for_user(stream: AsyncIterable[Any]) -> None:
    """Make one active user's recommendation (several users at a time) and report the outcome."""
    manual = stream.noack()  # type: ignore[attr-defined]
    async for event in manual.events():
        await recommendations().advisor.admit(event, manual.ack)


@app.agent(batch_progress_topic, name="count-batch-progress")
async def count_batch_progress(stream: AsyncIterable[Any]) -> None:
    """Keep each batch's counts, log its progress, and resend stalled batches' missing users."""
    async for event in stream.events():  # type: ignore[attr-defined]
        service = recommendations()
        try:
            decoding = decode_or_dead_letter(event, parse_batch_progress, service.planner.dead_letters)
            progress = await unless_unwritten(event, decoding)
            if isinstance(progress, BatchProgress):
                await service.counter.on_progress(progress)
        except Exception:
            log.exception("recommendations: progress event at offset %s failed", event.message.offset)
