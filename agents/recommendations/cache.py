"""The recommendation cache in Redis: ``recommendations:user:{id}`` → JSON, 24 h TTL."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from redis.asyncio import Redis

from agents.recommendations.advice import Recommendation

__all__ = ["TTL_SECONDS", "RecommendationCache", "cache_key", "cache_value", "parse_cache_value"]

TTL_SECONDS = 86_400


def cache_key(user_id: int) -> str:
    return f"recommendations:user:{user_id}"


def cache_value(recommendation: Recommendation, generated_at: datetime) -> str:
    """The cached JSON: ``{"summary", "tips", "generated_at"}`` (ISO-8601 with offset)."""
    if generated_at.tzinfo is None:
        raise ValueError("generated_at must be timezone-aware")
    return json.dumps(
        {
            "summary": recommendation.summary,
            "tips": list(recommendation.tips),
            "generated_at": generated_at.isoformat(),
        },
        ensure_ascii=False,
    )


def parse_cache_value(raw: bytes | str | None) -> dict[str, Any] | None:
    """A cached entry, or None when absent or not in our shape."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
        datetime.fromisoformat(value["generated_at"])
    except (ValueError, TypeError, KeyError):
        return None
    return value if isinstance(value, dict) else None


class RecommendationCache:
    def __init__(self, redis: Redis, zone: ZoneInfo) -> None:
        self._redis = redis
        self._zone = zone

    async def generated_on(self, user_id: int) -> date | None:
        """The day (in TIMEZONE) the user's cached recommendation was made, if one is cached."""
        value = parse_cache_value(await self._redis.get(cache_key(user_id)))
        if value is None:
            return None
        return datetime.fromisoformat(value["generated_at"]).astimezone(self._zone).date()

    async def store(self, user_id: int, recommendation: Recommendation, generated_at: datetime) -> None:
        await self._redis.set(cache_key(user_id), cache_value(recommendation, generated_at), ex=TTL_SECONDS)
