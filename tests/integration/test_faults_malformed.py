"""1,000 malformed deadline events among good ones: no agent crash, every bad one dead-lettered, every good one sent."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Sized
from datetime import UTC, datetime
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from models.records import InvalidEvent, parse_deadline_passed
from streams.producers import EventPublisher
from tests.integration.harness import eventually
from tests.integration.kafka_io import read_topic

pytestmark = pytest.mark.integration
DAY = datetime.now(UTC).date()  # deadline events must name a date near today (EVENT_DATE_DAYS_*)
SizedT = TypeVar("SizedT", bound=Sized)

scalars = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False), st.text(max_size=30), st.integers())
bad_values = st.one_of(
    st.binary(max_size=200),  # not JSON, or not UTF-8
    st.text(max_size=200).map(str.encode),
    st.fixed_dictionaries({"cafe_id": scalars, "date": scalars}).map(lambda d: json.dumps(d).encode()),
    st.fixed_dictionaries({"date": st.just(DAY.isoformat())}).map(lambda d: json.dumps(d).encode()),  # no cafe_id
    st.fixed_dictionaries({"cafe_id": st.integers(1, 10**6)}).map(lambda d: json.dumps(d).encode()),  # no date
    st.builds(
        lambda n, s: json.dumps({"cafe_id": n, "date": s * 40_000}).encode(),  # huge strings
        st.integers(1, 10**6),
        st.sampled_from(["x", "2026-11-25"]),
    ),
    st.lists(scalars, max_size=5).map(lambda v: json.dumps(v).encode()),
).filter(lambda raw: not _valid(raw))


def _valid(raw: bytes) -> bool:
    try:
        parse_deadline_passed(raw)
    except InvalidEvent:
        return False
    return True


async def _at_least(count: int, items: Awaitable[SizedT]) -> SizedT | None:
    found = await items
    return found if len(found) >= count else None


def generate(count: int) -> list[bytes]:
    """``count`` malformed values drawn by Hypothesis (generation only: nothing to shrink here)."""
    drawn: list[bytes] = []

    @settings(
        max_examples=count,
        phases=[Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(bad_values)
    def collect(value: bytes) -> None:
        drawn.append(value)

    collect()
    return drawn[:count]


async def test_a_thousand_malformed_events_are_dead_lettered_and_the_good_ones_around_them_sent(
    worker, worker_settings, telegram, factory
):
    bad = generate(1000)
    assert len(bad) == 1000
    cafes = []
    for i in range(20):
        cafe = await factory.cafe(f"Sturdy {i}", chat_id=-9_000_000 - i)
        await factory.order(await factory.user(), await factory.combo(cafe), DAY)
        cafes.append(cafe)
    async with EventPublisher(worker_settings) as publisher:
        for i, value in enumerate(bad):
            await publisher.send_raw("deadline-passed", value, key=str(i % 7).encode())
            if i % 50 == 0:
                await publisher.deadline_passed(cafes[i // 50].id, DAY)
    chats = {c.tg_chat_id for c in cafes}
    await eventually(lambda: {m.chat_id for m in telegram.messages if m.delivered} >= chats, 60)

    async def dead_letters_by_source_record() -> dict[tuple[int, int], dict]:
        letters = await read_topic(worker_settings.kafka_broker_url, worker_settings.topic("dead-letters"))
        return {(v["partition"], v["offset"]): v for _, v in letters if v["source_topic"].endswith("deadline-passed")}

    # Dead letters are published when their event's offset is committed, so they may trail the good events;
    # an event redelivered after a rebalance is dead-lettered again (at least once), hence one per source record.
    by_record = await eventually(lambda: _at_least(1000, dead_letters_by_source_record()), 30, 0.5)
    assert len(by_record) == 1000  # this module's worker saw no other bad event
    from_source = list(by_record.values())
    assert not [v for v in from_source if v["reason"].startswith("internal error")]  # each one rejected with a reason
    logs = worker.logs()
    assert "Crashed" not in logs and "crashed" not in logs
    assert logs.count("deadline-passed: malformed event") >= 1000
