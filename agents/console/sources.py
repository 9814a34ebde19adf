"""What the console reads outside the worker's tables: cafe names (PostgreSQL) and dead letters (Kafka).

Dead letters are read when the page is asked for, with a short-lived consumer outside any group:
the last ``window`` letters of each partition of ``dead-letters``, and where the replay command's
group (``{APP_ID}-dead-letter-replay``) stands, which tells the letters a replay would still read.
No index is kept in the worker: nothing to rebuild after a restart or to keep in step across
workers, and the page shows exactly what ``replay-dead-letters`` would see.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from models.db import Cafe
from streams.dead_letters import read_letter
from streams.kafka_security import kafka_options
from streams.settings import Settings

__all__ = ["CafeNames", "LetterRecord", "read_dead_letters", "replay_group"]

log = logging.getLogger(__name__)

LetterRecord = tuple[int, int, dict[str, Any]]  # partition, offset, the letter


class CafeNames:
    """Cafe names by id, read-only, from the backend's ``cafes`` table."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def names(self, ids: Iterable[int]) -> dict[int, str]:
        """The names of the cafes among ``ids`` that exist; one statement."""
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(Cafe.id, Cafe.name).where(Cafe.id.in_(wanted)))
            return {int(cafe_id): str(name) for cafe_id, name in rows}


def replay_group(settings: Settings) -> str:
    """The consumer group of ``replay-dead-letters`` (it remembers what was replayed)."""
    return f"{settings.app_id}-dead-letter-replay"


async def read_dead_letters(
    settings: Settings, *, window: int = 500, timeout: float = 5.0
) -> tuple[list[LetterRecord], dict[int, int]]:
    """The last ``window`` letters of each partition, and the replay group's next offset per partition."""
    options = kafka_options(settings)
    topic = settings.topic("dead-letters")
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        async with asyncio.timeout(timeout):
            [described] = await admin.describe_topics([topic])
            tps = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
            committed = await admin.list_consumer_group_offsets(replay_group(settings), partitions=tps)
    finally:
        await admin.close()
    replayed_up_to = {tp.partition: meta.offset for tp, meta in committed.items() if meta.offset >= 0}
    if not tps:
        return [], replayed_up_to
    consumer = AIOKafkaConsumer(**options, group_id=None, enable_auto_commit=False)
    await consumer.start()
    records: list[LetterRecord] = []
    try:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        behind = {tp for tp in tps if starts[tp] < ends[tp]}
        for tp in behind:
            consumer.seek(tp, max(starts[tp], ends[tp] - window))
        deadline = time.monotonic() + timeout
        while behind and time.monotonic() < deadline:
            for tp, messages in (await consumer.getmany(*behind, timeout_ms=200)).items():
                records += [(tp.partition, m.offset, read_letter(m.value)) for m in messages if m.offset < ends[tp]]
                if messages and messages[-1].offset >= ends[tp] - 1:
                    behind.discard(tp)
    finally:
        await consumer.stop()
    return records, replayed_up_to
