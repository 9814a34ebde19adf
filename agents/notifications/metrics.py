"""Prometheus metrics of deadline notifications, read at scrape time from the objects that keep them."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from agents.notifications.agent import Notifications
from agents.notifications.shared_budget import BudgetStats

__all__ = ["notification_metrics"]


def notification_metrics(capability: Notifications) -> Iterator[Metric]:
    """Digest outcomes, Telegram's answers and the bot's budget as seen by this worker."""
    notifier = capability.notifier
    digests = CounterMetricFamily("lunch_digests", "Digest outcomes on this worker", labels=["outcome"])
    for outcome, count in sorted({**notifier.counts, "dead_lettered": notifier.dead_letters.count}.items()):
        digests.add_metric([outcome], count)
    yield digests

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
