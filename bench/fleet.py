"""Several workers of one bot share its Telegram budget: a burst of deadlines against Telegram's enforced limits.

    .venv/bin/python -m bench.fleet [--workers 1 2 3 4] [--cafes 600] [--skew] [--rate R]

For each worker count: that many workers of one app id at the README's defaults (``TELEGRAM_GLOBAL_RATE`` only
if ``--rate`` is given), a sandbox Bot API that answers 429 above 30 messages/s and 20/min per group, and
``--cafes`` deadlines published at once. ``--skew`` puts 80 % of the cafes' keys in two of the 8 partitions, so
two workers hold most of the burst. Prints the combined rate (first to last message) against the configured
rate, the 429 answers, dead letters, digests delivered twice, and Redis round trips per send.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiokafka.partitioner import murmur2

from bench.notifications import DAY, TOKEN, fill
from sandbox.telegram import run_in_thread
from streams.producers import EventPublisher
from streams.settings import Settings
from tests.conftest import FreshDatabase
from tests.integration.harness import AUTH, OPS_TOKEN, WorkerProcess, eventually, free_port, unique_name
from tests.integration.kafka_io import delete_app_topics

PARTITIONS = Settings().topic_partitions


def partition_of(cafe_id: int) -> int:
    return (murmur2(str(cafe_id).encode()) & 0x7FFFFFFF) % PARTITIONS


def pick(pairs: list[tuple[int, int]], count: int, skew: bool) -> list[tuple[int, int]]:
    """``count`` cafes; with ``skew``, 80 % of them keyed into partitions 0 and 1."""
    if not skew:
        return pairs[:count]
    hot = [p for p in pairs if partition_of(p[0]) in (0, 1)][: count * 4 // 5]
    cold = [p for p in pairs if partition_of(p[0]) not in (0, 1)][: count - len(hot)]
    if len(hot) + len(cold) < count:
        raise SystemExit("not enough cafes to skew: raise the fill")
    return hot + cold


async def view(port: str) -> dict:
    url = f"http://127.0.0.1:{port}/notifications/"
    async with aiohttp.ClientSession(headers=AUTH) as http, http.get(url) as response:
        return json.loads(await response.text())


async def settled(fleet: list[WorkerProcess], quiet: float = 5.0) -> None:
    """Wait until no worker has logged a new rebalance step for ``quiet`` seconds (the group has settled)."""
    seen, since = -1, time.monotonic()
    while True:
        steps = sum(w.logs().count("Recovery]: Worker ready") + w.logs().count("(Re-)joining") for w in fleet)
        if steps != seen:
            seen, since = steps, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        await asyncio.sleep(0.5)


@contextlib.asynccontextmanager
async def worker_fleet(env: dict[str, str], count: int) -> AsyncIterator[list[WorkerProcess]]:
    """``count`` workers of ``env`` (each its own web port and instance id), settled; stopped and their app's
    topics deleted on the way out."""
    logs = Path(tempfile.mkdtemp())
    fleet: list[WorkerProcess] = []
    try:
        for i in range(count):
            worker_env = {**env, "WEB_PORT": str(free_port()), "WORKER_INSTANCE_ID": f"{env['APP_ID']}-{i}"}
            fleet.append(WorkerProcess(worker_env, logs / f"worker-{i}.log").start())
        await settled(fleet)
        yield fleet
    finally:
        for worker in fleet:
            worker.stop()
        await delete_app_topics(Settings.from_env(env).kafka_broker_url, [env["APP_ID"]])


async def run(db: FreshDatabase, pairs: list[tuple[int, int]], workers: int, rate: float | None) -> dict:
    fake = run_in_thread(expected_token=TOKEN, enforce_limits=True)
    name = unique_name("fleet")
    env = {
        "APP_ID": name,
        "TOPIC_PREFIX": f"{name}.",
        "DATABASE_URL": db.url,
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_BASE_URL": fake.base_url,
        "BROKER_SESSION_TIMEOUT": "6",
        "OPS_TOKEN": OPS_TOKEN,
    }
    if rate is not None:
        env["TELEGRAM_GLOBAL_RATE"] = str(rate)
    try:
        async with worker_fleet(env, workers) as fleet:
            async with EventPublisher(Settings.from_env(env)) as publisher:
                for cafe_id, _ in pairs:
                    await publisher.deadline_passed(cafe_id, DAY)
            chats = {chat for _, chat in pairs}
            await eventually(lambda: chats <= {m.chat_id for m in fake.messages if m.delivered}, 600, 0.2)
            await asyncio.sleep(2)  # late duplicates, if any, would arrive now
            messages = [m for m in fake.messages if m.chat_id in chats]
            arrivals = sorted(m.received_at for m in messages if m.delivered)
            views = [await view(w.env["WEB_PORT"]) for w in fleet]
    finally:
        fake.stop()
    sends = sum(int(v["telegram"]["responses"].get(status, 0)) for v in views for status in ("200", "429"))
    trips = sum(v["budget"]["worker"]["redis_round_trips"] for v in views)
    configured = float(views[0]["budget"]["global_rate"])
    combined = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    timeline = Counter(int(t - arrivals[0]) for t in arrivals)
    return {
        "workers": workers,
        "configured": configured,
        "combined": combined,
        "ratio": combined / configured,
        "429": sum(m.status == 429 for m in messages),
        "dead_letters": sum(v["digests"].get("dead_lettered", 0) for v in views),
        "twice": sum(n > 1 for n in Counter(m.chat_id for m in messages if m.delivered).values()),
        "trips_per_send": trips / max(1, sends),
        "per_worker": [v["digests"].get("sent", 0) for v in views],
        "timeline": [timeline[second] for second in range(max(timeline) + 1)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--cafes", type=int, default=600)
    parser.add_argument("--skew", action="store_true", help="80 %% of the cafes keyed into two partitions")
    parser.add_argument("--timeline", action="store_true", help="print the messages received in each second")
    parser.add_argument("--rate", type=float, default=None, help="TELEGRAM_GLOBAL_RATE (default: the README's)")
    args = parser.parse_args()
    db = FreshDatabase(unique_name("lunch_fleet").replace("-", "_")).create()
    try:
        pairs = asyncio.run(fill(db.url, args.cafes * 3 if args.skew else args.cafes))
        chosen = pick(pairs, args.cafes, args.skew)
        for workers in args.workers:
            started = time.monotonic()
            r = asyncio.run(run(db, chosen, workers, args.rate))
            print(
                f"workers={r['workers']} cafes={args.cafes}{' skewed' if args.skew else ''}: "
                f"combined {r['combined']:.2f} msg/s of {r['configured']:g} -> ratio {r['ratio']:.3f}; "
                f"429s {r['429']}, dead letters {r['dead_letters']}, delivered twice {r['twice']}, "
                f"Redis round trips per send {r['trips_per_send']:.2f}, sent per worker {r['per_worker']} "
                f"({time.monotonic() - started:.0f} s)",
                flush=True,
            )
            if args.timeline:
                print(f"  messages per second: {r['timeline']}", flush=True)
    finally:
        db.drop()


if __name__ == "__main__":
    main()
