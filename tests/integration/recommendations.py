"""Helpers of the recommendation integration tests: a worker with fake Gemini, Redis, batches over HTTP."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import aiohttp
from redis.asyncio import Redis
from sqlalchemy import text

from tests.integration.harness import AUTH, eventually

ZONE = "Europe/Moscow"
KEYS = ("gemini-key-ALPHA-secret", "gemini-key-BETA-secret")
REDIS_URL = "redis://127.0.0.1:6379/15"  # a database of its own: tests flush it


def today() -> date:
    return datetime.now(ZoneInfo(ZONE)).date()


async def reset_data(factory, redis: Redis) -> None:
    """No orders and an empty cache: each test sees only the users it makes active."""
    async with factory.engine.begin() as conn:
        await conn.execute(text("TRUNCATE order_items, orders"))
    await redis.flushdb()


async def active_user(factory, name: str, *, orders: int = 5, days_ago: int = 0, status: str = "active"):
    """A user with ``orders`` orders ending ``days_ago`` days ago, one per day."""
    user = await factory.user(name)
    cafe = await factory.cafe(f"{name}'s cafe")
    combo = await factory.combo(cafe, "Business lunch", "450.00")
    soup = await factory.item(cafe, "Borscht", "soup")
    for i in range(orders):
        day = today() - timedelta(days=days_ago + i)
        await factory.order(user, combo, day, items=(soup,), notes=f"note {i} of {name}", status=status)
    return user


async def batches(web_port: int) -> list[dict]:
    url = f"http://127.0.0.1:{web_port}/recommendations/batches/"
    async with aiohttp.ClientSession(headers=AUTH) as http, http.get(url) as response:
        assert response.status == 200
        return (await response.json())["batches"]


async def finished_batch(web_port: int, known: set[str], timeout: float = 30.0) -> dict:
    """Wait for a batch not in ``known`` to finish; return its counts."""

    async def probe() -> dict | None:
        new = [b for b in await batches(web_port) if b["batch_id"] not in known and b["finished_at"] is not None]
        return new[0] if new else None

    return await eventually(probe, timeout)


async def cached(redis: Redis, user_id: int) -> dict | None:
    raw = await redis.get(f"recommendations:user:{user_id}")
    return json.loads(raw) if raw is not None else None
