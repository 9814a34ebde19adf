"""Cached, rate-limited dependency probes; liveness that never depends on them; readiness that does."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from streams import probes
from streams.health import WorkerHealth
from streams.probes import DependencyProbes, KafkaProbe, ProbeResult
from streams.rebalance import Lasting


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingProbe:
    def __init__(self, fail: BaseException | None = None, delay: float = 0.0) -> None:
        self.calls, self.fail, self.delay = 0, fail, delay

    async def __call__(self) -> None:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail


async def test_a_result_is_served_from_the_cache_until_it_is_older_than_the_ttl():
    clock, probe = Clock(), CountingProbe()
    deps = DependencyProbes(ttl=5, clock=clock)
    deps.register("redis", probe)
    assert (await deps.results())["redis"].ok
    clock.now += 4.9
    for _ in range(10):
        await deps.results()
    assert probe.calls == 1
    clock.now += 0.2
    await deps.results()
    assert probe.calls == 2


async def test_concurrent_callers_share_one_probe():
    probe = CountingProbe(delay=0.05)
    deps = DependencyProbes(ttl=5)
    deps.register("kafka", probe)
    answers = await asyncio.gather(*(deps.results() for _ in range(20)))
    assert probe.calls == 1 and all(a["kafka"].ok for a in answers)


async def test_a_failure_or_a_timeout_is_unreachable_with_the_error_type_only():
    deps = DependencyProbes(ttl=5, timeout=0.05)
    deps.register("postgres", CountingProbe(fail=OSError("connect to 10.0.0.1:5432 refused, password=x")))
    deps.register("redis", CountingProbe(delay=1))
    results = await deps.results()
    assert (results["postgres"].ok, results["postgres"].error) == (False, "OSError")
    assert (results["redis"].ok, results["redis"].error) == (False, "TimeoutError")
    assert "password" not in str(results["postgres"].report(results["postgres"].at))
    assert deps.last() == results  # the cache, without probing


class FakeAdmin:
    made: list[FakeAdmin] = []

    def __init__(self, **kwargs: object) -> None:
        self.closed, self.fail = False, False
        FakeAdmin.made.append(self)

    async def start(self) -> None: ...

    async def describe_cluster(self) -> dict:
        if self.fail:
            raise ConnectionError("broker gone")
        return {}

    async def close(self) -> None:
        self.closed = True


async def test_the_kafka_probe_keeps_one_admin_client_and_makes_a_new_one_after_a_failure(monkeypatch):
    monkeypatch.setattr(probes, "AIOKafkaAdminClient", FakeAdmin)
    FakeAdmin.made = []
    kafka = KafkaProbe({"bootstrap_servers": ["127.0.0.1:9092"]})
    for _ in range(5):
        await kafka()
    assert len(FakeAdmin.made) == 1
    FakeAdmin.made[0].fail = True
    with pytest.raises(ConnectionError):
        await kafka()
    assert FakeAdmin.made[0].closed
    await kafka()
    assert len(FakeAdmin.made) == 2
    await kafka.close()
    assert FakeAdmin.made[1].closed


def health(clock: Clock, *, rebalancing: bool = False, in_recovery: bool = False) -> WorkerHealth:
    app = SimpleNamespace(rebalancing=rebalancing, in_recovery=in_recovery)
    watch = SimpleNamespace(long_rebalance=Lasting(30), flow_held=Lasting(30), stall_after=30.0)
    return WorkerHealth(app, watch, DependencyProbes(clock=clock), rebalance_limit=600, clock=clock)  # type: ignore[arg-type]


def test_live_until_a_rebalance_outlasts_the_limit():
    clock = Clock()
    worker = health(clock)
    worker.watch.long_rebalance.observe(True, clock.now)
    clock.now += 600
    assert worker.liveness().ok
    for _ in range(3):  # the watchdog's warnings restart its own clock, not the rebalance's
        clock.now += 30
        worker.watch.long_rebalance.observe(True, clock.now)
    verdict = worker.liveness()
    assert not verdict.ok and verdict.reasons[0].startswith("rebalancing for 690s")
    worker.watch.long_rebalance.observe(False, clock.now)
    assert worker.liveness().ok


def test_a_flow_stopped_outside_a_rebalance_past_twice_the_stall_delay_is_wedged():
    clock = Clock()
    worker = health(clock)
    worker.watch.flow_held.observe(True, clock.now)
    clock.now += 60
    assert worker.liveness().ok  # the watchdog resumes it at 30 s; 60 s is its second chance
    clock.now += 1
    assert not worker.liveness().ok


def test_waiting_for_kafka_is_not_wedged():
    clock = Clock()
    worker = health(clock)
    worker.watch.long_rebalance.observe(True, clock.now - 3600)
    assert not worker.liveness().ok
    worker.dependencies._results["kafka"] = ProbeResult(False, 3000.0, clock.now, "TimeoutError")
    assert worker.liveness().ok


async def test_ready_when_recovered_and_every_dependency_answers():
    clock = Clock()
    worker = health(clock, rebalancing=True)
    worker.dependencies.register("redis", CountingProbe(fail=ConnectionError()))
    worker.dependencies.register("postgres", CountingProbe())
    assert worker.readiness_now().reasons == ("rebalancing",)  # nothing probed yet: no result to judge
    verdict = await worker.readiness()
    assert verdict.reasons == ("rebalancing", "redis unreachable (ConnectionError)")
    worker.app.rebalancing, worker.app.in_recovery = False, True
    assert worker.readiness_now().reasons == ("table recovery running", "redis unreachable (ConnectionError)")
    assert worker.liveness().ok  # never because of a dependency
