"""Stand-ins shared by the unit tests of both capabilities."""

from __future__ import annotations

from unittest.mock import AsyncMock

__all__ = ["FakeTopic"]


class FakeTopic:
    """A topic whose sends are recorded (``send`` is an ``AsyncMock``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.send = AsyncMock()

    def get_topic_name(self) -> str:
        return self.name
