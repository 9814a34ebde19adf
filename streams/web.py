"""Our web pages beside Faust's own: ``/health`` and ``/notifications/``.

Both answer JSON and never show a secret: the bot appears by its id, Gemini keys
by fingerprint.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from faust import web
from sqlalchemy import text

from agents.notifications.agent import notifier
from streams.app import app, settings
from streams.producers import bootstrap_servers
from streams.resources import resources
from streams.settings import bot_id_of

__all__ = ["HealthView", "NotificationsView", "check"]

CHECK_TIMEOUT = 3.0


async def check(probe: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    """Run one reachability probe with a timeout: ``{"ok": bool, "ms": float, "error"?: str}``."""
    started = time.perf_counter()
    try:
        await asyncio.wait_for(probe(), CHECK_TIMEOUT)
    except Exception as exc:  # any failure means "not reachable"; the type is enough to act on
        return {"ok": False, "ms": round((time.perf_counter() - started) * 1000, 1), "error": type(exc).__name__}
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}


async def _kafka() -> None:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers(settings.kafka_broker_url), request_timeout_ms=int(CHECK_TIMEOUT * 1000)
    )
    await admin.start()
    try:
        await admin.describe_cluster()
    finally:
        await admin.close()


async def _postgres() -> None:
    if resources.engine is None:
        raise RuntimeError("not started")
    async with resources.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _redis() -> None:
    if resources.redis is None:
        raise RuntimeError("not started")
    await resources.redis.ping()


@app.page("/health")
class HealthView(web.View):
    """Whether Kafka, PostgreSQL and Redis answer: 200 when all do, else 503."""

    async def get(self, request: web.Request) -> web.Response:
        names = ("kafka", "postgres", "redis")
        results = await asyncio.gather(check(_kafka), check(_postgres), check(_redis))
        checks = dict(zip(names, results, strict=True))
        healthy = all(c["ok"] for c in checks.values())
        body = {"status": "ok" if healthy else "unavailable", "checks": checks}
        return self.json(body, status=200 if healthy else 503)


@app.page("/notifications/")
class NotificationsView(web.View):
    """This worker's digest counts, Telegram answers by status, and the bot's shared send budget."""

    async def get(self, request: web.Request) -> web.Response:
        telegram = resources.telegram
        budget = await resources.budget.describe() if resources.budget is not None else None
        return self.json(
            {
                "digests": dict(notifier.counts),
                "telegram": {
                    "bot_id": bot_id_of(settings.telegram_bot_token),
                    "responses": dict(telegram.responses) if telegram else {},
                    "token_rejected": bool(telegram and telegram.unauthorized),
                },
                "budget": budget,
            }
        )
