"""Prometheus metrics at ``/metrics``: Faust's own sensor plus the collectors the wiring registers.

Each capability contributes a function that yields its metric families, read at
scrape time from the objects that keep the counts (nothing is counted twice). The
platform's own: what the rebalance guards repaired, liveness and readiness, each
dependency's last probe, the consumer lag of every stream partition, missing secrets.

Faust's sensor is Faust's, with one metric changed: ``{prefix}_events_runtime_ms`` is
``{prefix}_events_runtime_seconds``, in seconds (``promtool check metrics`` rejects
abbreviated units and wants base units). Faust's monitor takes its metrics as a tuple,
so that histogram is swapped before the monitor is made; the other names are Faust's,
``_offset_commited`` spelling included. The monitor is ``LeanPrometheusMonitor``: Faust's,
with the labelled series of its per-event hooks looked up once instead of on every event.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any

from aiohttp.web import Response
from faust import web
from faust.sensors.monitor import Monitor
from faust.sensors.prometheus import MS_LATENCY_BUCKETS, FaustMetrics, PrometheusMonitor
from faust.types import TP, CollectionT, EventT, Message, PendingMessage, StreamT
from faust.types.transports import ProducerT
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.app import app
from streams.binding import NotBound
from streams.dead_letters import DeadLetterSink
from streams.health import WorkerHealth
from streams.rebalance import StallWatch
from streams.settings import Settings

__all__ = [
    "FAUST_PREFIX",
    "Collectors",
    "LeanPrometheusMonitor",
    "collectors",
    "configuration_metrics",
    "dead_letter_metrics",
    "health_metrics",
    "setup_faust_sensor",
    "stall_watch_metrics",
]

#: Prefix of Faust's own metrics.
FAUST_PREFIX = "lunch_streams"


class Collectors(Collector):
    """Yields the metric families of every registered source."""

    def __init__(self) -> None:
        self._sources: list[Callable[[], Iterable[Metric]]] = []

    def register(self, source: Callable[[], Iterable[Metric]]) -> None:
        self._sources.append(source)

    def collect(self) -> Iterator[Metric]:
        for source in self._sources:
            try:
                yield from source()
            except NotBound:  # scraped before the worker built its services
                continue


def stall_watch_metrics(watch: StallWatch) -> Iterator[Metric]:
    """What the rebalance guards had to repair (see ``streams.rebalance``)."""
    yield CounterMetricFamily(
        "lunch_partition_reseeks",
        "Stream partitions sought back after they stalled below their end (see streams.rebalance)",
        value=watch.reseeks,
    )
    yield CounterMetricFamily(
        "lunch_consumer_flow_resumes",
        "Times the consumer flow was found stopped outside a rebalance and resumed (see streams.rebalance)",
        value=watch.flow_resumes,
    )


def health_metrics(health: WorkerHealth) -> Iterator[Metric]:
    """Liveness, readiness (from the cached probes), each dependency, and the lag of every stream partition."""
    yield GaugeMetricFamily("lunch_worker_live", "1 while /livez answers 200", value=float(health.liveness().ok))
    yield GaugeMetricFamily(
        "lunch_worker_ready", "1 while /readyz answers 200 (cached probes)", value=float(health.readiness_now().ok)
    )
    up = GaugeMetricFamily(
        "lunch_dependency_up", "1 when the dependency answered its last probe", labels=["dependency"]
    )
    for name, result in sorted(health.dependencies.last().items()):
        up.add_metric([name], float(result.ok))
    yield up
    lag = GaugeMetricFamily(
        "lunch_consumer_lag",
        "Records of an assigned stream partition not committed yet: end offset minus committed offset",
        labels=["topic", "partition"],
    )
    for tp, seen in sorted(health.watch.progress().items()):
        if seen.end is not None:
            lag.add_metric([tp.topic, str(tp.partition)], float(max(0, seen.end - (seen.committed or 0))))
    yield lag


def dead_letter_metrics(sinks: Iterable[DeadLetterSink]) -> Iterator[Metric]:
    """Malformed events dead-lettered, by source topic."""
    malformed = CounterMetricFamily(
        "lunch_malformed_events", "Malformed events sent to the dead letters, by source topic", labels=["topic"]
    )
    for topic, count in sorted(sum((sink.malformed for sink in sinks), Counter()).items()):
        malformed.add_metric([topic], count)
    yield malformed


#: Secrets without which a capability cannot work at all.
REQUIRED_SECRETS = {"TELEGRAM_BOT_TOKEN": "telegram_bot_token", "GEMINI_API_KEYS": "gemini_api_keys"}


def configuration_metrics(settings: Settings) -> Iterator[Metric]:
    """1 for each required secret that is not set (its capability cannot work until it is)."""
    missing = GaugeMetricFamily("lunch_configuration_missing", "1 when the variable is not set", labels=["variable"])
    for variable, field in REQUIRED_SECRETS.items():
        missing.add_metric([variable], float(not getattr(settings, field)))
    yield missing


class _SecondsHistogram(Histogram):
    """A histogram in seconds that Faust's monitor feeds milliseconds."""

    def observe(self, amount: float, exemplar: dict[str, str] | None = None) -> None:
        super().observe(amount / 1000, exemplar)


class _Children(dict[Hashable, Any]):
    """A metric's labelled children by what their labels are made from, each made (``labels``) once."""

    def __init__(self, make: Callable[[Any], Any]) -> None:
        super().__init__()
        self._make = make

    def __missing__(self, key: Hashable) -> Any:
        child = self[key] = self._make(key)
        return child


class LeanPrometheusMonitor(PrometheusMonitor):
    """Faust's ``PrometheusMonitor``, minus the ``labels(...)`` lookup (lock, tuple, strings) on every event.

    The hooks that run per event (message in, stream event in, table get/set/del, send initiated, the end
    offset of each record fetched) keep the labelled children they use, keyed by what the labels are made
    from: the same series, updated the same way, after the same ``Monitor`` bookkeeping as Faust's. The
    children Faust removes at rebalances are dropped from the caches with them.
    """

    def __init__(self, metrics: FaustMetrics, **kwargs: Any) -> None:
        super().__init__(metrics=metrics, **kwargs)
        per_topic, per_tp = metrics.messages_received_per_topics, metrics.messages_received_per_topics_partition
        sent, end_offsets = metrics.topic_messages_sent, metrics.topic_partition_end_offset
        self._received_per_topic = _Children(lambda topic: per_topic.labels(topic=topic))
        self._received_per_tp = _Children(lambda tp: per_tp.labels(topic=tp.topic, partition=tp.partition))
        self._events_per_stream: dict[str, Any] = {}  # by shortlabel, which Faust's stream label is made from
        self._keys_retrieved = self._per_table(self.KEYS_RETRIEVED)
        self._keys_updated = self._per_table(self.KEYS_UPDATED)
        self._keys_deleted = self._per_table(self.KEYS_DELETED)
        self._sent_per_topic = _Children(lambda topic: sent.labels(topic=f"topic.{topic}"))
        self._end_offset_per_tp = _Children(lambda tp: end_offsets.labels(topic=tp.topic, partition=tp.partition))

    def _per_table(self, operation: str) -> _Children:
        operations = self._metrics.table_operations
        return _Children(lambda name: operations.labels(table=f"table.{name}", operation=operation))

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        Monitor.on_message_in(self, tp, offset, message)
        self._metrics.messages_received.inc()
        self._metrics.active_messages.inc()
        self._received_per_topic[tp.topic].inc()
        self._received_per_tp[tp].set(offset)

    def on_stream_event_in(self, tp: TP, offset: int, stream: StreamT, event: EventT) -> dict | None:
        state = Monitor.on_stream_event_in(self, tp, offset, stream, event)
        self._metrics.total_events.inc()
        self._metrics.total_active_events.inc()
        shortlabel = stream.shortlabel
        per_stream = self._events_per_stream.get(shortlabel)
        if per_stream is None:
            per_stream = self._events_per_stream[shortlabel] = self._metrics.total_events_per_stream.labels(
                stream=f"stream.{self._stream_label(stream)}.events"
            )
        per_stream.inc()
        return state

    def on_table_get(self, table: CollectionT, key: Any) -> None:
        Monitor.on_table_get(self, table, key)
        self._keys_retrieved[table.name].inc()

    def on_table_set(self, table: CollectionT, key: Any, value: Any) -> None:
        Monitor.on_table_set(self, table, key, value)
        self._keys_updated[table.name].inc()

    def on_table_del(self, table: CollectionT, key: Any) -> None:
        Monitor.on_table_del(self, table, key)
        self._keys_deleted[table.name].inc()

    def on_send_initiated(
        self, producer: ProducerT, topic: str, message: PendingMessage, keysize: int, valsize: int
    ) -> Any:
        self._sent_per_topic[topic].inc()
        return Monitor.on_send_initiated(self, producer, topic, message, keysize, valsize)

    def track_tp_end_offset(self, tp: TP, offset: int) -> None:
        Monitor.track_tp_end_offset(self, tp, offset)
        self._end_offset_per_tp[tp].set(offset)

    def _clear_partition_related_metrics(self) -> None:
        super()._clear_partition_related_metrics()  # removes the topic and partition children
        for children in (
            self._received_per_topic,
            self._received_per_tp,
            self._sent_per_topic,
            self._end_offset_per_tp,
        ):
            children.clear()


def setup_faust_sensor(faust_app: object, prefix: str = FAUST_PREFIX) -> None:
    """``LeanPrometheusMonitor`` on ``faust_app`` and the ``/metrics`` page (``setup_prometheus_sensors``'s work)."""
    metrics = FaustMetrics.create(CollectorRegistry(), prefix)  # made aside, then registered renamed
    runtime = _SecondsHistogram(
        f"{prefix}_events_runtime_seconds",
        "Events runtime in seconds",
        buckets=[ms / 1000 for ms in MS_LATENCY_BUCKETS],
        registry=None,
    )
    metrics = metrics._replace(events_runtime_latency=runtime)
    for metric in metrics:
        REGISTRY.register(metric)
    faust_app.monitor = LeanPrometheusMonitor(metrics=metrics)  # type: ignore[attr-defined]


@app.page("/metrics")
async def metrics_page(self: web.View, request: web.Request) -> web.Response:
    """Every registered metric, in Prometheus' text format."""
    return Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})  # type: ignore[return-value]


collectors = Collectors()
setup_faust_sensor(app)
REGISTRY.register(collectors)
