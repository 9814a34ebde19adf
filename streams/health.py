"""Is the worker live, is it ready? The answers behind ``/livez``, ``/readyz``, ``/health`` and their gauges.

*Live* means not wedged, whatever the services around it do: the event loop answers
(the request is served at all), no rebalance or table recovery has lasted past
``LIVENESS_REBALANCE_LIMIT``, and the consumer flow has not stayed stopped outside a
rebalance for twice ``STREAM_STALL_AFTER`` (the watchdog of ``streams.rebalance``
resumes it after once; past twice, resuming failed). Both clocks are the watchdog's.
A worker waiting for Kafka is not wedged: while the last Kafka probe failed, neither
counts. Liveness never probes anything: restarting a worker cures none of its
dependencies' outages.

*Ready* means doing its work: out of rebalance and recovery, and Kafka, PostgreSQL and
Redis reachable (``streams.probes``, cached). Faust serves the web only once the first
recovery is over, so a worker that answers has recovered at least once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streams.binding import Late
from streams.probes import DependencyProbes, ProbeResult
from streams.rebalance import StallWatch

__all__ = ["PROBE_TIMEOUT", "PROBE_TTL", "Verdict", "WorkerHealth", "install", "worker_health"]

#: Seconds a dependency's probe result is served from the cache; the probes are refreshed that often.
PROBE_TTL = 5.0
#: Seconds a probe may take before its dependency counts as unreachable.
PROBE_TIMEOUT = 3.0


@dataclass(frozen=True, slots=True)
class Verdict:
    """Live or ready (``ok``), else the reasons why not."""

    ok: bool
    reasons: tuple[str, ...] = field(default=())

    def report(self) -> dict[str, Any]:
        return {"status": "ok" if self.ok else "failing", "reasons": list(self.reasons)}


class WorkerHealth:
    """Liveness and readiness of one worker, from its app, its rebalance watchdog and its dependency probes."""

    def __init__(
        self,
        app: Any,
        watch: StallWatch,
        dependencies: DependencyProbes,
        *,
        rebalance_limit: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.watch = watch
        self.dependencies = dependencies
        self.rebalance_limit = rebalance_limit
        self.clock = clock

    def liveness(self) -> Verdict:
        """Not wedged (see the module docstring); reads state only, probes nothing."""
        kafka = self.dependencies.last().get("kafka")
        if kafka is not None and not kafka.ok:
            return Verdict(True)  # waiting for Kafka, not wedged
        now, reasons = self.clock(), []
        rebalancing = self.watch.long_rebalance.began
        if rebalancing is not None and now - rebalancing > self.rebalance_limit:
            reasons.append(f"rebalancing for {now - rebalancing:.0f}s (limit {self.rebalance_limit:.0f}s)")
        stopped, limit = self.watch.flow_held.began, 2 * self.watch.stall_after
        if stopped is not None and now - stopped > limit:
            reasons.append(f"consumer flow stopped outside a rebalance for {now - stopped:.0f}s (limit {limit:.0f}s)")
        return Verdict(not reasons, tuple(reasons))

    def recovery(self) -> tuple[str, ...]:
        """Why the worker is not done with its partitions now (empty: it is)."""
        if self.app.in_recovery:
            return ("table recovery running",)
        if self.app.rebalancing:
            return ("rebalancing",)
        return ()

    def readiness_of(self, results: dict[str, ProbeResult]) -> Verdict:
        reasons = [*self.recovery()]
        reasons += [f"{name} unreachable ({r.error})" for name, r in sorted(results.items()) if not r.ok]
        return Verdict(not reasons, tuple(reasons))

    async def readiness(self) -> Verdict:
        """Recovered, and every dependency reachable (probing those whose cached result is stale)."""
        return self.readiness_of(await self.dependencies.results())

    def readiness_now(self) -> Verdict:
        """:meth:`readiness` from the cached results only (for the metrics, read without I/O)."""
        return self.readiness_of(self.dependencies.last())

    async def refresh(self) -> None:
        """Probe the dependencies whose results are stale (a timer, so the gauges stay current)."""
        await self.dependencies.results()

    async def report(self) -> dict[str, Any]:
        """The detailed report of ``/health``: each dependency, liveness, readiness, the partitions."""
        results, now = await self.dependencies.results(), self.clock()
        ready = self.readiness_of(results)
        return {
            "status": "ok" if all(r.ok for r in results.values()) else "unavailable",
            "checks": {name: result.report(now) for name, result in results.items()},
            "live": self.liveness().report(),
            "ready": ready.report(),
            "assigned_partitions": len(self.app.consumer.assignment()),
        }


#: Bound by ``streams.worker`` (which installs the watchdog) before the worker starts.
worker_health: Late[WorkerHealth] = Late("worker health")


def install(app: Any, watch: StallWatch, *, rebalance_limit: float) -> WorkerHealth:
    """Build the worker's health, refresh its probes every ``PROBE_TTL`` seconds, bind it; once per app."""
    dependencies = DependencyProbes(ttl=PROBE_TTL, timeout=PROBE_TIMEOUT)
    health = WorkerHealth(app, watch, dependencies, rebalance_limit=rebalance_limit)
    app.timer(PROBE_TTL, name="probe-dependencies")(health.refresh)
    worker_health.bind(health)
    return health
