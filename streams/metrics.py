"""Prometheus metrics at ``/metrics``: Faust's own sensor plus the collectors the wiring registers.

Each capability contributes a function that yields its metric families, read at
scrape time from the objects that keep the counts (nothing is counted twice).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from faust.sensors.prometheus import setup_prometheus_sensors
from prometheus_client.core import REGISTRY, CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.app import app
from streams.binding import NotBound
from streams.rebalance import StallWatch

__all__ = ["Collectors", "collectors", "stall_watch_metrics"]


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


collectors = Collectors()
setup_prometheus_sensors(app, pattern="/metrics", name_prefix="lunch_streams")
REGISTRY.register(collectors)
