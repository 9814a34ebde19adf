"""Publishing the backend's events, as plain JSON with the right key (no Faust needed).

The backend can import this, or do the same with any Kafka client: value = JSON,
``deadline-passed`` key = the cafe id as a decimal string, default (murmur2)
partitioner as in the Java client, kafka-python and aiokafka.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaProducer

from streams.kafka_security import kafka_options
from streams.settings import Settings

__all__ = ["EventPublisher"]


class EventPublisher:
    """``async with EventPublisher(settings) as pub: await pub.deadline_passed(12, date.today())``."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer = AIOKafkaProducer(**kafka_options(settings), acks="all")

    async def __aenter__(self) -> EventPublisher:
        await self._producer.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._producer.stop()

    async def send_raw(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        """Send bytes to ``topic`` (``TOPIC_PREFIX`` added) and wait for the broker's ack."""
        await self._producer.send_and_wait(self._settings.topic(topic), value=value, key=key)

    async def send_json(self, topic: str, value: dict[str, Any], key: str | None = None) -> None:
        await self.send_raw(topic, json.dumps(value).encode(), key.encode() if key is not None else None)

    async def deadline_passed(self, cafe_id: int, order_date: date, deadline: datetime | None = None) -> None:
        value: dict[str, Any] = {"cafe_id": cafe_id, "date": order_date.isoformat()}
        if deadline is not None:
            value["deadline"] = deadline.isoformat()
        await self.send_json("deadline-passed", value, key=str(cafe_id))

    async def daily_task(self, task_type: str = "generate_recommendations") -> None:
        from datetime import UTC

        await self.send_json(
            "daily-tasks", {"type": task_type, "requested_at": datetime.now(UTC).isoformat()}, key=task_type
        )
