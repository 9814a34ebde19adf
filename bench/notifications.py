"""Notification pipeline benchmarks on the real services: Kafka → worker → PostgreSQL → sandbox Telegram.

    .venv/bin/python -m bench.notifications throughput [--cafes 2000]   # target >= 500 digests/s, 1 worker
    .venv/bin/python -m bench.notifications limits [--cafes 1000]       # target achieved/allowed >= 0.95, 0 x 429
    .venv/bin/python -m bench.notifications throughput --latency 0.15 --cafes 300   # a Bot API 150 ms away

``throughput``: a sandbox Bot API with no limits and the worker's throttle opened wide; digests per second from the
first event produced to the last message received, and each digest's latency from its event to its message.
``limits``: a sandbox that answers 429 above 30 msg/s overall and 20 msg/min per group, the worker at its
production throttle settings except ``TELEGRAM_GLOBAL_RATE`` (given, default 29.5).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from sandbox.telegram import run_in_thread
from streams.producers import EventPublisher
from streams.settings import Settings
from tests.conftest import FreshDatabase
from tests.integration.harness import OPS_TOKEN, WorkerProcess, eventually, free_port, unique_name
from tests.integration.kafka_io import delete_app_topics

DAY = datetime.now(UTC).date()  # deadline events must name a date near today (EVENT_DATE_DAYS_*)
TOKEN = "4242:bench-token"


async def fill(url: str, cafes: int) -> list[tuple[int, int]]:
    """``cafes`` cafes with 3 orders each (2 items); return (cafe id, chat id) pairs."""
    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        await conn.execute(
            "INSERT INTO users (telegram_id, name) SELECT g, 'person ' || g FROM generate_series(1, 300) g"
        )
        await conn.execute(
            f"INSERT INTO cafes (name, tg_chat_id) SELECT 'cafe ' || g, -1000000 - g FROM generate_series(1, {cafes}) g"
        )
        await conn.execute("INSERT INTO combos (cafe_id, name, price) SELECT id, 'Business lunch', 450.50 FROM cafes")
        await conn.execute(
            "INSERT INTO menu_items (cafe_id, name, category) SELECT id, 'Borscht', 'soup' FROM cafes "
            "UNION ALL SELECT id, 'Compote', 'drink' FROM cafes"
        )
        await conn.execute(
            f"INSERT INTO orders (user_id, cafe_id, combo_id, order_date, total_price, notes) "
            f"SELECT 1 + (c.id * 3 + g) % 300, c.id, b.id, DATE '{DAY}', 450.50, 'no onions' "
            f"FROM cafes c JOIN combos b ON b.cafe_id = c.id, generate_series(1, 3) g"
        )
        await conn.execute(
            "INSERT INTO order_items (order_id, menu_item_id) SELECT o.id, m.id FROM orders o "
            "JOIN menu_items m ON m.cafe_id = o.cafe_id"
        )
        await conn.execute("ANALYZE")
        return [(r["id"], r["tg_chat_id"]) for r in await conn.fetch("SELECT id, tg_chat_id FROM cafes ORDER BY id")]
    finally:
        await conn.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(db: FreshDatabase, mode: str, cafes: int, global_rate: float, latency: float) -> None:
    limits = mode == "limits"
    fake = run_in_thread(expected_token=TOKEN, enforce_limits=limits, latency=latency)
    name = unique_name("bench")
    env = {
        "APP_ID": name,
        "TOPIC_PREFIX": f"{name}.",
        "WEB_PORT": str(free_port()),
        "OPS_TOKEN": OPS_TOKEN,
        "DATABASE_URL": db.url,
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_BASE_URL": fake.base_url,
        "BROKER_SESSION_TIMEOUT": "6",
    }
    if limits:
        env["TELEGRAM_GLOBAL_RATE"] = str(global_rate)
    else:
        env.update(TELEGRAM_GLOBAL_RATE="1000000", TELEGRAM_CHAT_INTERVAL="0", TELEGRAM_GROUP_PER_MINUTE="1000000")
    log = Path(tempfile.mkdtemp()) / "worker.log"
    worker = WorkerProcess(env, log).start()
    try:
        pairs = await fill(db.url, cafes)
        settings = Settings.from_env(env)
        produced: dict[int, float] = {}
        async with EventPublisher(settings) as publisher:
            started = time.time()
            for cafe_id, chat_id in pairs:
                await publisher.deadline_passed(cafe_id, DAY)
                produced[chat_id] = time.time()
        await eventually(lambda: len({m.chat_id for m in fake.messages if m.delivered}) >= len(pairs), 600, 0.2)
        messages = fake.messages
        delivered = {m.chat_id: m.received_at for m in messages if m.delivered}
        rejected = sum(m.status == 429 for m in messages)
        elapsed = max(delivered.values()) - started
        latencies = [(delivered[c] - produced[c]) * 1000 for c in delivered]
        rate = len(delivered) / elapsed
        print(f"mode={mode} cafes={cafes} delivered={len(delivered)} in {elapsed:.2f}s -> {rate:.1f} digests/s")
        flowing = max(delivered.values()) - min(delivered.values())
        print(
            f"events produced in {max(produced.values()) - started:.2f}s; first to last message {flowing:.2f}s "
            f"-> {(len(delivered) - 1) / flowing:.1f} digests/s once flowing"
        )
        p50, p99 = statistics.median(latencies), percentile(latencies, 0.99)
        print(f"latency event->message: p50 {p50:.0f} ms, p99 {p99:.0f} ms")
        if limits:
            print(f"achieved/allowed = {rate / 30:.3f} (allowed 30 msg/s), 429 answers: {rejected}")
    finally:
        worker.stop()
        fake.stop()
        await delete_app_topics(Settings.from_env(env).kafka_broker_url, [name])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["throughput", "limits"])
    parser.add_argument("--cafes", type=int, default=None)
    parser.add_argument("--global-rate", type=float, default=29.5)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds the sandbox Bot API takes to answer")
    args = parser.parse_args()
    cafes = args.cafes or (2000 if args.mode == "throughput" else 1000)
    db = FreshDatabase(unique_name("lunch_bench").replace("-", "_")).create()
    try:
        asyncio.run(run(db, args.mode, cafes, args.global_rate, args.latency))
    finally:
        db.drop()


if __name__ == "__main__":
    main()
