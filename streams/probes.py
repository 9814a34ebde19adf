"""Whether the worker's dependencies (Kafka, PostgreSQL, Redis) answer: cached, rate-limited probes.

Each dependency is one probe, registered by whoever opened its connection (the wiring,
``streams.worker``). A caller gets the cached results; a result older than ``ttl`` is
probed again, once for every caller waiting at that moment, within ``timeout``. So
``/readyz``, ``/health`` and the metrics may be asked as often as anyone likes: a
dependency sees at most one probe per ``ttl``, and Kafka's goes through one admin
client kept open (made again only after a failure).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

__all__ = ["DependencyProbes", "KafkaProbe", "Probe", "ProbeResult"]

Probe = Callable[[], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe's answer: reachable or not, how long it took, when (monotonic), the error's type."""

    ok: bool
    ms: float
    at: float
    error: str | None = None

    def report(self, now: float) -> dict[str, Any]:
        """The JSON of ``/health``: ``{"ok", "ms", "age_s", "error"?}``."""
        body: dict[str, Any] = {"ok": self.ok, "ms": self.ms, "age_s": round(now - self.at, 1)}
        if self.error is not None:
            body["error"] = self.error
        return body


class DependencyProbes:
    """The registered probes and their last results, each refreshed at most once per ``ttl`` seconds."""

    def __init__(self, *, ttl: float = 5.0, timeout: float = 3.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.timeout = timeout
        self.clock = clock
        self._probes: dict[str, Probe] = {}
        self._results: dict[str, ProbeResult] = {}
        self._running: dict[str, asyncio.Future[ProbeResult]] = {}

    def register(self, name: str, probe: Probe) -> None:
        self._probes[name] = probe
        self._results.pop(name, None)

    def last(self) -> dict[str, ProbeResult]:
        """The results known now, without probing (a dependency never probed yet is left out)."""
        return dict(self._results)

    async def results(self) -> dict[str, ProbeResult]:
        """Every dependency's result, probing those whose result is older than ``ttl``."""
        names = list(self._probes)
        fresh = await asyncio.gather(*(self._result(name) for name in names))
        return dict(zip(names, fresh, strict=True))

    async def _result(self, name: str) -> ProbeResult:
        known = self._results.get(name)
        if known is not None and self.clock() - known.at < self.ttl:
            return known
        running = self._running.get(name)
        if running is None:
            running = asyncio.ensure_future(self._probe(name))
            self._running[name] = running
            running.add_done_callback(lambda _: self._running.pop(name, None))
        return await asyncio.shield(running)  # a caller that gives up does not cancel the others' probe

    async def _probe(self, name: str) -> ProbeResult:
        started = self.clock()
        try:
            await asyncio.wait_for(self._probes[name](), self.timeout)
        except Exception as exc:  # any failure means "not reachable"; its type is enough to act on
            result = ProbeResult(False, _ms(self.clock() - started), self.clock(), type(exc).__name__)
        else:
            result = ProbeResult(True, _ms(self.clock() - started), self.clock())
        self._results[name] = result
        return result


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


class KafkaProbe:
    """Kafka answers a metadata request, through one admin client kept open between probes."""

    def __init__(self, options: Mapping[str, Any], *, timeout: float = 3.0) -> None:
        """``options``: the admin client's connection arguments (``streams.kafka_security.kafka_options``)."""
        self.options = options
        self.timeout = timeout
        self._admin: AIOKafkaAdminClient | None = None

    async def __call__(self) -> None:
        try:
            if self._admin is None:
                self._admin = AIOKafkaAdminClient(**self.options, request_timeout_ms=int(self.timeout * 1000))
                await self._admin.start()
            await self._admin.describe_cluster()
        except BaseException:  # timed out or failed: the next probe starts from a new client
            await self.close()
            raise

    async def close(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            await admin.close()
