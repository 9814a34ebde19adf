"""``GET /health``: whether the services the worker depends on answer. Capabilities add their own pages.

Kafka is checked here; the wiring (``streams.worker``) registers a probe for each
connection it opens (PostgreSQL, Redis). Answers JSON, never a secret.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from faust import web

from streams.app import app, settings
from streams.kafka_admin import bootstrap_servers

__all__ = ["HealthView", "check", "register_probe"]

CHECK_TIMEOUT = 3.0

Probe = Callable[[], Awaitable[Any]]


async def check(probe: Probe) -> dict[str, Any]:
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


_PROBES: dict[str, Probe] = {"kafka": _kafka}


def register_probe(name: str, probe: Probe) -> None:
    """Add a dependency to ``/health`` (the wiring does, for each connection it opens)."""
    _PROBES[name] = probe


@app.page("/health")
class HealthView(web.View):
    """Whether Kafka and every registered dependency answer: 200 when all do, else 503."""

    async def get(self, request: web.Request) -> web.Response:
        names = list(_PROBES)
        results = await asyncio.gather(*(check(_PROBES[name]) for name in names))
        checks = dict(zip(names, results, strict=True))
        healthy = all(c["ok"] for c in checks.values())
        body = {"status": "ok" if healthy else "unavailable", "checks": checks}
        return self.json(body, status=200 if healthy else 503)
