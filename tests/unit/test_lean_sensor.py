"""LeanPrometheusMonitor writes the /metrics of Faust's PrometheusMonitor, byte for byte, for the same sensor calls."""

from __future__ import annotations

from itertools import count
from types import SimpleNamespace

import prometheus_client.metrics
import pytest
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP
from prometheus_client import CollectorRegistry, generate_latest

from streams.metrics import LeanPrometheusMonitor


class Owner:
    """A stream's task (Faust's monitor keeps it in a weak dictionary)."""


class Stream:
    def __init__(self, shortlabel: str) -> None:
        self.shortlabel = shortlabel
        self.task_owner = Owner()


class Clock:
    """A clock ``step`` seconds further at each reading, so that both monitors read the same times."""

    def __init__(self, start: float, step: float) -> None:
        self._ticks = count()
        self._start, self._step = start, step

    def __call__(self) -> float:
        return self._start + next(self._ticks) * self._step


STREAMS = [Stream("Stream: Topic: p.daily-tasks"), Stream("Stream: Channel: <ANON>&Topic: p.Deadline-Passed")]
TABLES = [SimpleNamespace(name="digests"), SimpleNamespace(name="lunch-streams-budget")]
TPS = [TP("p.daily-tasks", 0), TP("p.daily-tasks", 3), TP("p.deadline-passed", 1)]


def drive(monitor: PrometheusMonitor, registry: CollectorRegistry) -> list[bytes]:
    """The hooks of a worker's life (events, commits, a send error, a web request, a rebalance), scraped as it goes."""
    app = SimpleNamespace(rebalancing_count=0)
    scrapes = []

    def events(first: int, last: int) -> None:
        for offset in range(first, last):
            tp = TPS[offset % len(TPS)]
            stream, table = STREAMS[offset % 2], TABLES[offset % 3 % 2]
            message = SimpleNamespace(time_in=None)
            monitor.track_tp_end_offset(tp, offset + 10)
            monitor.on_message_in(tp, offset, message)  # type: ignore[arg-type]
            state = monitor.on_stream_event_in(tp, offset, stream, None)  # type: ignore[arg-type]
            monitor.on_table_get(table, "key")  # type: ignore[arg-type]
            monitor.on_table_set(table, "key", offset)  # type: ignore[arg-type]
            if offset % 5 == 0:
                monitor.on_table_del(table, "key")  # type: ignore[arg-type]
            sent = monitor.on_send_initiated(None, f"lunch-streams-{table.name}-changelog", None, 3, 40)  # type: ignore[arg-type]
            monitor.on_stream_event_out(tp, offset, stream, None, state)  # type: ignore[arg-type]
            monitor.on_message_out(tp, offset, message)  # type: ignore[arg-type]
            if offset % 7 == 0:
                monitor.on_send_error(None, RuntimeError("broker down"), sent)  # type: ignore[arg-type]
            else:
                monitor.on_send_completed(None, sent, None)  # type: ignore[arg-type]
        committing = monitor.on_commit_initiated(None)  # type: ignore[arg-type]
        monitor.on_tp_commit({tp: last for tp in TPS})
        monitor.on_commit_completed(None, committing)  # type: ignore[arg-type]
        scrapes.append(generate_latest(registry))

    events(0, 40)
    monitor.count("rebalances_seen", 2)
    request = monitor.on_web_request_start(app, None)  # type: ignore[arg-type]
    monitor.on_web_request_end(app, None, SimpleNamespace(status=200), request)  # type: ignore[arg-type]
    app.rebalancing_count = 1
    rebalance = monitor.on_rebalance_start(app)  # type: ignore[arg-type]
    scrapes.append(generate_latest(registry))  # the topic and partition series removed
    monitor.on_rebalance_return(app, rebalance)  # type: ignore[arg-type]
    events(40, 45)  # recovery: the removed series come back from zero
    monitor.on_rebalance_end(app, rebalance)  # type: ignore[arg-type]
    scrapes.append(generate_latest(registry))
    events(45, 100)
    return scrapes


def run(monitor_class: type[PrometheusMonitor], monkeypatch: pytest.MonkeyPatch) -> tuple[list[bytes], dict]:
    """The scrapes and the ``Monitor`` statistics of a monitor of ``monitor_class`` driven through ``drive``."""
    # The `_created` series: the wall clock when each series was made (a counter's, a histogram's, each child's).
    monkeypatch.setattr(prometheus_client.metrics, "time", SimpleNamespace(time=Clock(1.8e9, 1.0)))
    registry = CollectorRegistry()
    monitor = monitor_class(metrics=FaustMetrics.create(registry, "lunch_streams"), time=Clock(1000.0, 0.003))
    return drive(monitor, registry), dict(monitor.asdict())


def test_the_lean_monitor_writes_what_fausts_writes_for_the_same_calls(monkeypatch):
    expected, fausts_statistics = run(PrometheusMonitor, monkeypatch)
    scraped, statistics = run(LeanPrometheusMonitor, monkeypatch)
    assert scraped == expected
    last = scraped[-1].decode()
    assert 'total_events_per_stream_total{stream="stream.channel_anon_&topic_p.deadline-passed.events"} 50.0' in last
    assert 'topic_partition_end_offset{partition="3",topic="p.daily-tasks"} 107.0' in last
    assert 'messages_received_per_topic_total{topic="p.deadline-passed"} 18.0' in last  # counted again from 0
    # Faust's web stats read the Monitor's own bookkeeping: the same too.
    assert statistics == fausts_statistics
