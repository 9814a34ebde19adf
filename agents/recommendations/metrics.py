"""Prometheus metrics of daily recommendations, read at scrape time from the objects that keep them."""

from __future__ import annotations

from collections.abc import Iterator

import faust
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from agents.recommendations.batch_health import RECENT_BATCHES
from agents.recommendations.batches import BatchCounts
from agents.recommendations.gemini import GeminiRecommender

__all__ = ["recommendation_metrics"]

BATCH_STATES = ("total", "succeeded", "failed", "skipped")
TOKEN_KINDS = ("prompt", "output", "total")


def recommendation_metrics(gemini: GeminiRecommender | None, batches: faust.Table) -> Iterator[Metric]:
    """Gemini calls, tokens and key states by fingerprint, and the users of the latest batches this worker holds."""
    calls = CounterMetricFamily(
        "lunch_gemini_calls", "Gemini calls per key fingerprint and outcome", labels=["key", "outcome"]
    )
    tokens = {
        kind: CounterMetricFamily(
            f"lunch_gemini_{kind}_tokens", f"Gemini {kind} tokens of this worker's answers per key", labels=["key"]
        )
        for kind in TOKEN_KINDS
    }
    usable = GaugeMetricFamily("lunch_gemini_key_usable", "1 when a key is ready now", labels=["key", "state"])
    if gemini is not None:
        for fingerprint, stats in sorted(gemini.key_stats().items()):
            for outcome in ("ok", "rate_limited", "errors"):
                calls.add_metric([fingerprint, outcome], float(stats.get(outcome, 0)))
            for kind, family in tokens.items():
                family.add_metric([fingerprint], float(stats.get(f"{kind}_tokens", 0)))
            state = str(stats.get("state", "unknown"))
            usable.add_metric([fingerprint, state], 1.0 if state == "ready" else 0.0)
    yield calls
    yield from tokens.values()
    yield usable
    yield CounterMetricFamily(
        "lunch_gemini_shared_fallbacks",
        "Gemini key leases made from this worker's own key states because Redis (the shared pool) failed",
        value=gemini.fallbacks if gemini is not None else 0,
    )

    users = GaugeMetricFamily(
        "lunch_recommendation_batch_users", "Users of recent batches by state", labels=["batch", "state"]
    )
    recent = sorted((BatchCounts.from_dict(raw) for raw in batches.values()), key=lambda b: b.started_at or 0)
    for batch in recent[-RECENT_BATCHES:]:
        for state in BATCH_STATES:
            users.add_metric([batch.batch_id, state], float(getattr(batch, state)))
    yield users
