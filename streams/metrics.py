"""Prometheus metrics at ``/metrics``: Faust's own sensor plus our counters, read at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from faust.sensors.prometheus import setup_prometheus_sensors
from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agents.notifications.agent import notifier
from agents.notifications.shared_budget import BudgetStats
from agents.recommendations.agent import recommendation_batches
from streams.app import app
from streams.rebalance import stall_watch
from streams.resources import resources

__all__ = ["LunchCollector"]

BATCH_STATES = ("total", "succeeded", "failed", "skipped")
RECENT_BATCHES = 5


class LunchCollector(Collector):
    """Our counters, taken from the objects that keep them (nothing is counted twice)."""

    def collect(self) -> Iterator[Metric]:
        digests = CounterMetricFamily("lunch_digests", "Digest outcomes on this worker", labels=["outcome"])
        for outcome, count in sorted(notifier.counts.items()):
            digests.add_metric([outcome], count)
        yield digests

        telegram = CounterMetricFamily(
            "lunch_telegram_responses", "Bot API answers by HTTP status (or transport failure)", labels=["status"]
        )
        if resources.telegram is not None:
            for status, count in sorted(resources.telegram.responses.items()):
                telegram.add_metric([status], count)
        yield telegram

        budget = resources.budget.stats if resources.budget is not None else BudgetStats()
        yield GaugeMetricFamily(
            "lunch_telegram_budget_waiting",
            "Sends waiting for their slot of the bot's budget now",
            value=budget.waiting,
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
            "lunch_telegram_budget_fallback_sends",
            "Sends paced locally while Redis was down",
            value=budget.fallback_sends,
        )

        gemini = CounterMetricFamily(
            "lunch_gemini_calls", "Gemini calls per key fingerprint and outcome", labels=["key", "outcome"]
        )
        key_state = GaugeMetricFamily("lunch_gemini_key_usable", "1 when a key is ready now", labels=["key", "state"])
        if resources.gemini is not None:
            for fingerprint, stats in sorted(resources.gemini.key_stats().items()):
                for outcome in ("ok", "rate_limited", "errors"):
                    gemini.add_metric([fingerprint, outcome], float(stats.get(outcome, 0)))
                state = str(stats.get("state", "unknown"))
                key_state.add_metric([fingerprint, state], 1.0 if state == "ready" else 0.0)
        yield gemini
        yield key_state
        yield CounterMetricFamily(
            "lunch_gemini_shared_fallbacks",
            "Gemini key leases made from this worker's own key states because Redis (the shared pool) failed",
            value=resources.gemini.fallbacks if resources.gemini is not None else 0,
        )

        batches = GaugeMetricFamily(
            "lunch_recommendation_batch_users", "Users of recent batches by state", labels=["batch", "state"]
        )
        recent = sorted(recommendation_batches.values(), key=lambda b: b.get("started_at") or 0)[-RECENT_BATCHES:]
        for batch in recent:
            for state in BATCH_STATES:
                batches.add_metric([batch["batch_id"], state], float(batch.get(state, 0)))
        yield batches

        yield CounterMetricFamily(
            "lunch_partition_reseeks",
            "Stream partitions sought back after they stalled below their end (see streams.rebalance)",
            value=stall_watch.reseeks,
        )
        yield CounterMetricFamily(
            "lunch_consumer_flow_resumes",
            "Times the consumer flow was found stopped outside a rebalance and resumed (see streams.rebalance)",
            value=stall_watch.flow_resumes,
        )


setup_prometheus_sensors(app, pattern="/metrics", name_prefix="lunch_streams")
REGISTRY.register(LunchCollector())
