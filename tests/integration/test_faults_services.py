"""Redis down, then PostgreSQL down, for 30 s each: the worker stays up, counts the errors and retries the work."""

from __future__ import annotations

import asyncio
import json
import subprocess

import aiohttp
import pytest
from redis.asyncio import Redis

from sandbox.gemini import run_in_thread as run_gemini
from sandbox.telegram import run_in_thread as run_telegram
from streams.producers import EventPublisher
from streams.settings import Settings
from tests.integration.conftest import BOT_TOKEN, start_worker, worker_env
from tests.integration.harness import AUTH, REPO, eventually
from tests.integration.recommendations import KEYS, REDIS_URL, ZONE, active_user, batches, cached, reset_data, today

pytestmark = pytest.mark.integration
OUTAGE = 30.0


def services(action: str, name: str) -> None:
    subprocess.run([str(REPO / "scripts" / "services.sh"), action, name], check=True, capture_output=True, timeout=180)


async def health(port: int) -> tuple[int, dict]:
    url = f"http://127.0.0.1:{port}/health"
    async with aiohttp.ClientSession(headers=AUTH) as http, http.get(url) as response:
        return response.status, json.loads(await response.text())


async def test_redis_then_postgres_down_for_30s_each(test_database_url, factory, tmp_path):
    telegram, gemini = run_telegram(expected_token=BOT_TOKEN), run_gemini()
    env = worker_env(
        test_database_url,
        TELEGRAM_API_BASE_URL=telegram.base_url,
        GEMINI_API_KEYS=",".join(KEYS),
        GEMINI_API_BASE_URL=gemini.base_url,
        REDIS_URL=REDIS_URL,
        TIMEZONE=ZONE,
        NOTIFY_BACKOFF_BASE="1",
        NOTIFY_BACKOFF_MAX="8",
        NOTIFY_MAX_ATTEMPTS="20",
    )
    worker = start_worker(env, tmp_path)
    settings = Settings.from_env(env)
    port = settings.web_port
    try:
        redis = Redis.from_url(REDIS_URL)
        await reset_data(factory, redis)
        await redis.aclose()
        users = [await active_user(factory, f"Outage {i}") for i in range(3)]

        # Redis down: the batch runs, every user fails (counted), the worker stays up.
        services("stop", "redis")
        try:
            status, body = await health(port)
            assert status == 503 and body["checks"]["redis"]["ok"] is False and body["checks"]["kafka"]["ok"]
            async with EventPublisher(settings) as publisher:
                await publisher.daily_task()
            [batch] = await eventually(lambda: _finished(port), 30)
            assert (batch["total"], batch["failed"], batch["succeeded"]) == (3, 3, 0)
            await asyncio.sleep(OUTAGE - 5)
        finally:
            services("start", "redis")
        async with EventPublisher(settings) as publisher:
            await publisher.daily_task()
        await eventually(lambda: _finished(port, count=2), 30)
        redis = Redis.from_url(REDIS_URL)
        assert all([await cached(redis, u.id) for u in users])  # the next batch made them
        await redis.aclose()

        # PostgreSQL down: the digest is retried with backoff and arrives once it is back.
        cafe = await factory.cafe("Outage Cafe", chat_id=-12_000_001)
        await factory.order(users[0], await factory.combo(cafe), today())
        services("stop", "postgres")
        try:
            async with EventPublisher(settings) as publisher:
                await publisher.deadline_passed(cafe.id, today())
            await eventually(
                lambda: f"digest cafe={cafe.id} date={today().isoformat()} attempt=2: database" in worker.logs(), 30
            )

            async def postgres_reported_down() -> bool:  # probes are cached for 5 s: the next one sees it
                status, body = await health(port)
                return status == 503 and body["checks"]["postgres"]["ok"] is False

            await eventually(postgres_reported_down, 15, 0.5)
            await asyncio.sleep(OUTAGE - 15)
        finally:
            services("start", "postgres")
        await eventually(lambda: [m for m in telegram.messages if m.chat_id == cafe.tg_chat_id and m.delivered], 60)

        async def healthy_again() -> bool:  # the probes' results are cached for 5 s: the next one sees PostgreSQL
            return (await health(port))[0] == 200

        await eventually(healthy_again, 15, 0.5)
        assert worker.proc is not None and worker.proc.poll() is None  # alive all along
    finally:
        services("start", "redis")
        services("start", "postgres")
        worker.stop()
        telegram.stop()
        gemini.stop()


async def _finished(port: int, count: int = 1) -> list[dict] | None:
    done = [b for b in await batches(port) if b["finished_at"] is not None]
    return done if len(done) >= count else None
