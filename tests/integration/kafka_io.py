"""Reading topics from the test process, as an operator would (no consumer group); deleting test topics."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from streams.kafka_admin import bootstrap_servers


async def read_topic(broker_url: str, topic: str, *, settle: float = 1.0) -> list[tuple[str | None, Any]]:
    """Every record of ``topic`` from the start: (key, JSON value) pairs."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers(broker_url),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    records: list[tuple[str | None, Any]] = []
    try:
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < settle:
            batch = await consumer.getmany(timeout_ms=200)
            for messages in batch.values():
                for m in messages:
                    quiet_since = time.monotonic()
                    records.append((m.key.decode() if m.key else None, json.loads(m.value)))
    finally:
        await consumer.stop()
    return records


async def delete_app_topics(broker_url: str, app_ids: Iterable[str]) -> int:
    """Delete the topics of these app ids (``{id}.…`` and Faust's ``{id}-…``); return how many.

    Test and benchmark workers each create a dozen topics under a unique app id; left
    behind, thousands of partitions slow a developer's broker down run after run.
    """
    prefixes = tuple(p for app_id in app_ids for p in (f"{app_id}.", f"{app_id}-"))
    if not prefixes:
        return 0
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(broker_url))
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith(prefixes)]
        for start in range(0, len(doomed), 100):
            await admin.delete_topics(doomed[start : start + 100], timeout_ms=60_000)
    finally:
        await admin.close()
    return len(doomed)


async def group_state(broker_url: str, group: str) -> tuple[str, int]:
    """A consumer group's state at the broker (``Stable``, ``PreparingRebalance``, ...) and its number of members."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(broker_url))
    await admin.start()
    try:
        [response] = await admin.describe_consumer_groups([group])
        state, members = response.groups[0][2], response.groups[0][5]
        return state, len(members)
    finally:
        await admin.close()
