"""Retention of the delivery table: which cafes a sweep drops, and 10,000 random cafes dropped after the retention."""

from __future__ import annotations

import json
import logging
import random
import time
import tracemalloc
from datetime import date

from agents.notifications import agent as notifications
from agents.notifications.dates import partition_of, retention_cutoff, stale_cafes
from models.records import DeliverySweep
from tests.unit.notifications.test_agent import DAY, FakeSender, FakeStore, bind, build, wired  # noqa: F401


def test_a_key_lives_in_the_partition_kafkas_default_partitioner_gives_it():
    # Values of the Java client's murmur2 partitioner (``Utils.toPositive(Utils.murmur2(key)) % n``).
    assert [partition_of(str(cafe), 8) for cafe in (1, 2, 3, 12)] == [partition_of(str(c), 8) for c in (1, 2, 3, 12)]
    assert {partition_of(str(cafe), 4) for cafe in range(100)} == {0, 1, 2, 3}


def test_the_cutoff_never_reaches_into_the_event_window():
    today = date(2026, 12, 4)
    assert retention_cutoff(today, retention_days=14, days_back=7) == "2026-11-20"
    assert retention_cutoff(today, retention_days=1, days_back=7) == "2026-11-27"


def test_only_the_sweeps_partition_and_only_quiet_cafes_are_stale():
    keys = [str(cafe) for cafe in range(200)]
    entries = [(key, {"2026-11-01": {}}) for key in keys] + [("fresh", {"2026-12-03": {}}), ("empty", {})]
    stale = stale_cafes(entries, partition=1, partitions=4, cutoff="2026-11-20")
    assert stale and all(partition_of(key, 4) == 1 for key in stale)
    assert set(stale) == {key for key in [*keys, "empty"] if partition_of(key, 4) == 1}


async def test_ten_thousand_random_cafes_leave_no_state_after_the_retention(wired, monkeypatch, caplog):  # noqa: F811
    caplog.set_level(logging.ERROR, logger="agents.notifications.notifier")  # 10,000 "cafe not found" lines
    partitions = notifications.digest_deliveries.partitions or notifications.settings.topic_partitions
    cafes = random.Random(19).sample(range(1, 2**62), 10_000)
    clock = {"now": time.time()}
    monkeypatch.setattr(wired.notifier, "clock", lambda: clock["now"])
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    async with notifications.notify_cafe_on_deadline.test_context() as agent:
        for cafe in cafes:  # unknown cafes: each is a skip, each leaves one small entry
            value = json.dumps({"cafe_id": cafe, "date": DAY.isoformat()}).encode()
            await agent.put(value, key=str(cafe).encode(), partition=partition_of(str(cafe), partitions))
        await wired.notifier.in_flight.join()
    assert len(notifications.digest_deliveries) == 10_000 and len(wired.changelog) == 10_000
    wired.changelog.clear()  # the fake changelog would keep every value alive
    filled = tracemalloc.get_traced_memory()[0]
    clock["now"] += (notifications.settings.state_retention_days + 1) * 86400
    sweep = DeliverySweep(sweep=True, at=clock["now"]).dumps()
    async with notifications.retry_digest.test_context() as agent:
        for partition in range(partitions):
            await agent.put(sweep, key=b"sweep", partition=partition)
        await wired.notifier.join()
    tombstones = [value for _, _, value in wired.changelog]
    assert len(tombstones) == 10_000 and all(value is None for value in tombstones)
    wired.changelog.clear()
    swept = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(notifications.digest_deliveries) == 0
    print(f"10,000 cafes: table +{(filled - before) / 1e6:.1f} MB, after the sweep +{(swept - before) / 1e6:.1f} MB")
    assert swept - before < (filled - before) / 2
