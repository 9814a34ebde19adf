"""Creating our topics before the consumer subscribes, and checking co-partitioning.

Faust creates internal topics while it subscribes, and the first metadata it
reads may not list them yet: it then ignores the topic until the next
rebalance. Creating every topic first (and waiting until the broker lists them)
avoids that; a source topic with the wrong partition count stops the worker with
a clear message instead of silently breaking the tables.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

__all__ = ["TopicLayoutError", "TopicSpec", "bootstrap_servers", "ensure_topics"]

log = logging.getLogger(__name__)


def bootstrap_servers(broker_url: str) -> list[str]:
    """``kafka://h1:9092,kafka://h2:9092`` (Faust's form) → ``["h1:9092", "h2:9092"]``."""
    servers = []
    for part in broker_url.split(","):
        part = part.strip()
        if "://" in part:
            part = part.split("://", 1)[1]
        if part:
            servers.append(part.rstrip("/"))
    return servers


class TopicLayoutError(RuntimeError):
    """An existing topic's partition count breaks co-partitioning."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False
    #: The partition count must match (the topic feeds or mirrors a co-partitioned table).
    strict: bool = True


def _partition_counts(described: list[dict]) -> dict[str, int]:
    return {t["topic"]: len(t["partitions"]) for t in described if t.get("error_code", 0) == 0}


async def ensure_topics(
    options: Mapping[str, Any], specs: list[TopicSpec], *, replication: int = 1, timeout: float = 30.0
) -> None:
    """Create missing topics, wait until the broker lists them all, verify partition counts.

    ``options``: the admin client's connection arguments (``streams.kafka_security.kafka_options``).
    """
    admin = AIOKafkaAdminClient(**options, request_timeout_ms=int(timeout * 1000))
    await admin.start()
    try:
        existing = _partition_counts(await admin.describe_topics())
        missing = [s for s in specs if s.name not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(
                        name=s.name,
                        num_partitions=s.partitions,
                        replication_factor=replication,
                        topic_configs={"cleanup.policy": "compact"} if s.compacted else {},
                    )
                    for s in missing
                ]
            )
            log.info("kafka: created topics %s", ", ".join(s.name for s in missing))
        deadline = time.monotonic() + timeout
        while True:
            existing = _partition_counts(await admin.describe_topics([s.name for s in specs]))
            if all(s.name in existing for s in specs):
                break
            if time.monotonic() > deadline:
                absent = [s.name for s in specs if s.name not in existing]
                raise TimeoutError(f"kafka: topics not visible after {timeout}s: {absent}")
            await asyncio.sleep(0.2)
        wrong = [
            f"{s.name} has {existing[s.name]} partitions, expected {s.partitions}"
            for s in specs
            if s.strict and existing[s.name] != s.partitions
        ]
        if wrong:
            raise TopicLayoutError(
                "co-partitioning broken (set TOPIC_PARTITIONS to the partition count of "
                "deadline-passed): " + "; ".join(wrong)
            )
    finally:
        await admin.close()
