"""Stand-ins shared by the unit tests of both capabilities."""

from __future__ import annotations

import asyncio
from unittest.mock import AsyncMock

__all__ = ["FakeTopic", "delivered"]


def delivered() -> asyncio.Future[None]:
    """What Faust's ``topic.send`` returns once the broker took the record: an awaitable of its metadata."""
    future: asyncio.Future[None] = asyncio.get_event_loop().create_future()
    future.set_result(None)
    return future


class FakeTopic:
    """A topic whose sends are recorded (``send`` is an ``AsyncMock`` answering as the broker took each record)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.send = AsyncMock(side_effect=lambda *args, **kwargs: delivered())

    def get_topic_name(self) -> str:
        return self.name
