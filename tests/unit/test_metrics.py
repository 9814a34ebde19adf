"""The platform's /metrics: Faust's sensor with its runtime histogram in seconds, malformed events, secrets missing."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

from prometheus_client.core import REGISTRY

from streams.metrics import configuration_metrics, dead_letter_metrics, setup_faust_sensor
from streams.settings import Settings


def test_fausts_event_runtime_is_a_histogram_in_seconds_fed_milliseconds():
    app = SimpleNamespace()
    setup_faust_sensor(app, prefix="unit_faust")
    app.monitor._metrics.events_runtime_latency.observe(250.0)  # what Faust's monitor passes: milliseconds
    assert REGISTRY.get_sample_value("unit_faust_events_runtime_seconds_sum") == 0.25
    assert REGISTRY.get_sample_value("unit_faust_events_runtime_seconds_bucket", {"le": "0.25"}) == 1
    assert REGISTRY.get_sample_value("unit_faust_events_runtime_ms_count") is None


def test_malformed_events_are_summed_by_topic_over_every_sink():
    sinks = [SimpleNamespace(malformed=Counter({"p.deadline-passed": 2})), SimpleNamespace(malformed=Counter())]
    sinks[1].malformed["p.daily-tasks"] += 1
    sinks[0].malformed["p.daily-tasks"] += 1
    [family] = dead_letter_metrics(sinks)  # type: ignore[arg-type]
    assert {s.labels["topic"]: s.value for s in family.samples} == {"p.daily-tasks": 2, "p.deadline-passed": 2}


def test_each_missing_secret_is_named():
    [family] = configuration_metrics(Settings.from_env({"TELEGRAM_BOT_TOKEN": "1:x"}))
    assert {s.labels["variable"]: s.value for s in family.samples} == {"TELEGRAM_BOT_TOKEN": 0, "GEMINI_API_KEYS": 1}
