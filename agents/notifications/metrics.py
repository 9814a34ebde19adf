"""Prometheus metrics of deadline notifications, read at scrape time from the objects that keep them."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from aiokafka.partitioner import murmur2
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from agents.notifications.agent import Notifications
from agents.notifications.budget_policy import BudgetStats
from agents.notifications.delivery import DeliveryState, DeliveryStatus
from agents.notifications.notifier import DigestNotifier

__all__ = ["held_states", "notification_metrics", "retrying_digests"]


def retrying_digests(states: Iterable[DeliveryState], now: float) -> tuple[int, float]:
    """How many digests wait for a retry, and for how long the oldest has been trying (seconds; 0: none)."""
    started = [s.first_attempt_at or s.updated_at for s in states if s.status is DeliveryStatus.RETRYING]
    return len(started), max((now - t for t in started), default=0.0)


def _partition(key: str, partitions: int) -> int:
    """The partition of a cafe's key, as the producers' default (murmur2) partitioner chooses it."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def held_states(notifier: DigestNotifier) -> Iterator[DeliveryState]:
    """The delivery states of the cafes in this worker's active partitions.

    The table also holds standby copies of other workers' partitions: those are theirs to count.
    """
    table: Any = notifier.table
    topic = notifier.rekey.get_topic_name()  # `deadline-passed`: the table is co-partitioned with it
    active = {tp.partition for tp in table.app.consumer.assignment() if tp.topic == topic}
    for key, dates in list(table.items()):
        if dates and _partition(key, table.partitions) in active:
            yield from (DeliveryState.from_dict(raw) for raw in dates.values())


def notification_metrics(capability: Notifications) -> Iterator[Metric]:
    """Digest outcomes, digests retrying, the bot token, Telegram's answers and the bot's budget on this worker."""
    notifier = capability.notifier
    digests = CounterMetricFamily("lunch_digests", "Digest outcomes on this worker", labels=["outcome"])
    for outcome, count in sorted({**notifier.counts, "dead_lettered": notifier.dead_letters.count}.items()):
        digests.add_metric([outcome], count)
    yield digests
    retrying, oldest = retrying_digests(held_states(notifier), time.time())
    yield GaugeMetricFamily(
        "lunch_digests_retrying", "Digests of this worker's cafes waiting for their next attempt", value=retrying
    )
    yield GaugeMetricFamily(
        "lunch_digests_retrying_oldest_seconds",
        "Time since the first attempt of the oldest digest still retrying (0: none)",
        value=oldest,
    )
    rejected = capability.telegram is not None and capability.telegram.unauthorized
    yield GaugeMetricFamily(
        "lunch_telegram_token_rejected",
        "1 once Telegram rejected the bot token (401/404): nothing is sent until a restart",
        value=float(rejected),
    )

    telegram = CounterMetricFamily(
        "lunch_telegram_responses", "Bot API answers by HTTP status (or transport failure)", labels=["status"]
    )
    if capability.telegram is not None:
        for status, count in sorted(capability.telegram.responses.items()):
            telegram.add_metric([status], count)
    yield telegram

    budget = capability.budget.stats if capability.budget is not None else BudgetStats()
    yield GaugeMetricFamily(
        "lunch_telegram_budget_waiting", "Sends waiting for their slot of the bot's budget now", value=budget.waiting
    )
    yield CounterMetricFamily(
        "lunch_telegram_budget_wait_seconds",
        "Time sends spent waiting for their slot of the bot's budget",
        value=budget.wait_seconds,
    )
    yield CounterMetricFamily(
        "lunch_telegram_budget_deferred",
        "Sends whose slot was further than TELEGRAM_MAX_WAIT away (digest deferred)",
        value=budget.deferred,
    )
    yield CounterMetricFamily(
        "lunch_telegram_budget_pauses", "429 answers that paused the whole bot", value=budget.pauses
    )
    yield CounterMetricFamily(
        "lunch_telegram_budget_fallbacks",
        "Redis outages that sent this worker to TELEGRAM_FALLBACK_RATE",
        value=budget.fallbacks,
    )
    yield CounterMetricFamily(
        "lunch_telegram_budget_fallback_sends", "Sends paced locally while Redis was down", value=budget.fallback_sends
    )
