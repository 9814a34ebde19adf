"""Reading topics from the test process, as an operator would (no consumer group)."""

from __future__ import annotations

import json
import time
from typing import Any

from aiokafka import AIOKafkaConsumer

from streams.producers import bootstrap_servers


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
