"""Hostile ids on a real worker: a cafe id past 32 bits, published in a burst with good cafes, harms none of them."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

import pytest

from agents.notifications.queries import DigestStore
from agents.recommendations.selection import UserSelection
from models.database import Database
from models.db import Cafe, User
from streams.producers import EventPublisher
from tests.integration.harness import eventually

pytestmark = pytest.mark.integration
BIG_ID = 3_000_000_000  # the parser allows it (< 2**63); no cafe has it
BURSTS = 3  # a few bursts, so that the reads are batched at least once whatever the timing
_ids = itertools.count(datetime.now(UTC).microsecond * 1000)
_chats = iter(range(-7_100_001, -7_200_000, -1))


@pytest.fixture
async def publish(worker_settings):
    async with EventPublisher(worker_settings) as publisher:
        yield publisher


async def good_cafe(factory, name: str, day):
    cafe = await factory.cafe(name, chat_id=next(_chats))
    await factory.order(await factory.user(f"Guest of {name}"), await factory.combo(cafe), day)
    return cafe


async def test_a_cafe_id_past_32_bits_in_a_burst_is_a_skip_and_its_neighbours_go_out_at_once(
    worker, telegram, factory, publish
):
    day = datetime.now(UTC).date()
    for burst in range(BURSTS):
        cafes = [await good_cafe(factory, f"Neighbour {burst}.{i}", day) for i in range(1, 4)]
        await asyncio.gather(
            *(publish.deadline_passed(cafe_id, day) for cafe_id in [cafes[0].id, BIG_ID, cafes[1].id, cafes[2].id])
        )
        for cafe in cafes:
            line = f"digest cafe={cafe.id} date={day} attempt=1: sent to chat"
            await eventually(lambda line=line: line in worker.logs(), 30)
    logs = worker.logs()
    assert f"digest cafe={BIG_ID} date={day} attempt=1: nothing sent (cafe not found)" in logs
    assert "out of int32 range" not in logs
    assert "attempt=2" not in logs  # nothing was retried: no neighbour, and not the big id either


async def test_ids_past_32_bits_are_read_alone_and_in_a_batch(test_database_url, factory):
    """Ids are 64-bit (``bigint``) end to end: a cafe and a user whose ids pass 2**32 are read like any other."""
    day = datetime.now(UTC).date()
    cafe = Cafe(id=5_000_000_000 + next(_ids), name="Far Cafe", tg_chat_id=-5_000_000_001)
    user = User(id=5_000_000_000 + next(_ids), telegram_id=5_000_000_000 + next(_ids), name="Far User")
    await factory._add(cafe, user)
    combo = await factory.combo(cafe, "Far combo")
    await factory.order(user, combo, day)
    other = await good_cafe(factory, "Near Cafe", day)
    db = await Database.open(test_database_url, size=2)
    try:
        alone = await DigestStore(db).load_digest(cafe.id, day)
        store = DigestStore(db, gather=3)
        batched = await asyncio.gather(*(store.load_digest(i, day) for i in (cafe.id, BIG_ID, other.id)))
        stats = await UserSelection(db).user_stats(user.id, day)
        missing = await UserSelection(db).user_stats(BIG_ID, day)
    finally:
        await db.close()
    assert alone is not None and [o.user_name for o in alone.orders] == ["Far User"]
    assert [d.cafe_name if d else None for d in batched] == ["Far Cafe", None, "Near Cafe"]
    assert stats is not None and stats.name == "Far User" and stats.order_count == 1
    assert missing is None
