"""Recommendation batch benchmark: N active users, K keys at R requests/minute each, a sandbox Gemini with latency.

    .venv/bin/python -m bench.recommendations --users 2000 --keys 2 --rpm 600 --latency 0.2              # fan-out
    .venv/bin/python -m bench.recommendations --users 300 --keys 2 --rpm 600 --latency 0.2 --concurrency 1  # seed's way

Prints wall time from the trigger to the batch's end and the ratio wall / (N / (K·R)) (target <= 1.1: the keys'
quota, not the worker, sets the pace). ``--concurrency 1`` is the seed's way: one user after another.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import asyncpg
from redis.asyncio import Redis

from sandbox.gemini import run_in_thread
from streams.producers import EventPublisher
from streams.settings import Settings
from tests.conftest import FreshDatabase
from tests.integration.harness import OPS_TOKEN, WorkerProcess, eventually, free_port, unique_name
from tests.integration.kafka_io import delete_app_topics
from tests.integration.recommendations import REDIS_URL, batches


async def fill(url: str, users: int) -> None:
    """``users`` users with 5 orders each in the last 5 days."""
    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        await conn.execute(
            f"INSERT INTO users (telegram_id, name) SELECT g, 'eater ' || g FROM generate_series(1, {users}) g"
        )
        await conn.execute("INSERT INTO cafes (name) VALUES ('canteen')")
        await conn.execute("INSERT INTO combos (cafe_id, name, price) SELECT id, 'Business lunch', 450 FROM cafes")
        await conn.execute(
            "INSERT INTO orders (user_id, cafe_id, combo_id, order_date, total_price, notes) "
            "SELECT u.id, c.cafe_id, c.id, CURRENT_DATE - d, 450, 'no onions' "
            "FROM users u, combos c, generate_series(0, 4) d"
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def run(db: FreshDatabase, users: int, keys: int, rpm: int, latency: float, concurrency: int) -> None:
    fake = run_in_thread(latency=latency, rpm_limit=rpm)
    name = unique_name("bench")
    env = {
        "APP_ID": name,
        "TOPIC_PREFIX": f"{name}.",
        "WEB_PORT": str(free_port()),
        "OPS_TOKEN": OPS_TOKEN,
        "DATABASE_URL": db.url,
        "REDIS_URL": REDIS_URL,
        "GEMINI_API_BASE_URL": fake.base_url,
        "BROKER_SESSION_TIMEOUT": "6",
        "GEMINI_API_KEYS": ",".join(f"bench-key-{i}" for i in range(keys)),
        "RECOMMENDATION_CONCURRENCY": str(concurrency),
    }
    worker = WorkerProcess(env, Path(tempfile.mkdtemp()) / "worker.log").start()
    try:
        await fill(db.url, users)
        redis = Redis.from_url(REDIS_URL)
        await redis.flushdb()
        await redis.aclose()
        settings = Settings.from_env(env)
        async with EventPublisher(settings) as publisher:
            started = time.time()
            await publisher.daily_task()

        async def finished() -> dict | None:
            done = [b for b in await batches(settings.web_port) if b["finished_at"] is not None]
            return done[0] if done else None

        batch = await eventually(finished, 3600, 1.0)
        wall = batch["finished_at"] - started
        ideal = users / (keys * rpm / 60)
        print(f"users={users} keys={keys} rpm={rpm} latency={latency}s concurrency={concurrency}")
        print(f"succeeded={batch['succeeded']} failed={batch['failed']} skipped={batch['skipped']}")
        print(f"wall {wall:.1f}s, ideal N/(K*R) {ideal:.1f}s, ratio {wall / ideal:.2f}")
        answers = fake.requests
        print(f"sandbox answers: {len(answers)} requests, {sum(r.status == 429 for r in answers)} x 429")
    finally:
        worker.stop()
        fake.stop()
        await delete_app_topics(Settings.from_env(env).kafka_broker_url, [name])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--keys", type=int, default=2)
    parser.add_argument("--rpm", type=int, default=600)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    db = FreshDatabase(unique_name("lunch_bench").replace("-", "_")).create()
    try:
        asyncio.run(run(db, args.users, args.keys, args.rpm, args.latency, args.concurrency))
    finally:
        db.drop()


if __name__ == "__main__":
    main()
