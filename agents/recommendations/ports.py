"""What the recommendation services need from the outside: users' orders, the cache, the model."""

from __future__ import annotations

from datetime import date, datetime
from typing import Protocol

from agents.recommendations.advice import Recommendation, UserOrderStats
from agents.recommendations.usage import Answer

__all__ = ["Cache", "Recommender", "UserSource"]


class UserSource(Protocol):
    async def active_user_ids(self, today: date) -> list[int]: ...

    async def user_stats(self, user_id: int, today: date) -> UserOrderStats | None: ...


class Cache(Protocol):
    async def generated_on(self, user_id: int) -> date | None: ...

    async def store(self, user_id: int, recommendation: Recommendation, generated_at: datetime) -> None: ...


class Recommender(Protocol):
    async def recommend(self, prompt: str) -> Answer: ...
