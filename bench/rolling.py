"""A rolling restart of three workers under a steady stream of deadlines, with and without static membership.

    .venv/bin/python -m bench.rolling [--membership static dynamic] [--rate 10] [--seconds 90] [--session-timeout 30]
                                      [--latency 0.15] [--runs 3]

For each membership: three workers of one app id (each its own ``WORKER_INSTANCE_ID`` and web port, kept across its
restart), a sandbox Bot API enforcing Telegram's limits (answering after ``--latency`` seconds), and ``--rate``
deadlines per second (one cafe each) for ``--seconds``. From a quarter of the stream on, each worker in turn is
stopped (SIGTERM) and started again, the next one once the previous is back and ``--pause`` seconds have passed.
Prints the event→digest latency (p50, p99, max) over every digest and over the events published during the restarts,
how many digests took over 1 s and 3 s (how much of the stream a restart held up), the digests lost (never
delivered) and delivered twice, how long each restart took (SIGTERM to "Ready"), and the rebalances the workers went
through.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import Counter

from bench.fleet import worker_fleet
from bench.notifications import DAY, TOKEN, fill, percentile
from sandbox.telegram import TelegramThread, run_in_thread
from streams.producers import EventPublisher
from streams.settings import Settings
from tests.conftest import FreshDatabase
from tests.integration.harness import WorkerProcess, eventually, unique_name

WORKERS = 3


async def stream(env: dict[str, str], pairs: list[tuple[int, int]], rate: float) -> dict[int, float]:
    """Publish one deadline per cafe at ``rate`` per second; the publish time of each chat's event."""
    published: dict[int, float] = {}
    async with EventPublisher(Settings.from_env(env)) as publisher:
        started = time.monotonic()
        for i, (cafe_id, chat_id) in enumerate(pairs):
            await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
            published[chat_id] = time.time()
            await publisher.deadline_passed(cafe_id, DAY)
    return published


async def roll(fleet: list[WorkerProcess], start_after: float, pause: float) -> list[tuple[float, float]]:
    """Restart each worker in turn (SIGTERM, start again); each restart's (start, end) wall times."""
    await asyncio.sleep(start_after)
    windows = []
    for worker in fleet:
        began = time.time()
        await asyncio.to_thread(worker.stop)
        await asyncio.to_thread(worker.start)
        windows.append((began, time.time()))
        await asyncio.sleep(pause)
    return windows


def latencies(fake: TelegramThread, published: dict[int, float]) -> dict[int, float]:
    """Seconds from each chat's event to its first delivered digest."""
    first: dict[int, float] = {}
    for message in fake.messages:
        if message.delivered and message.chat_id in published:
            first.setdefault(message.chat_id, message.received_at)
    return {chat: first[chat] - published[chat] for chat in first}


def summary(values: list[float]) -> str:
    if not values:
        return "none"
    p50, p99 = statistics.median(values), percentile(values, 0.99)
    return f"p50 {p50:.2f} s, p99 {p99:.2f} s, max {max(values):.2f} s (n={len(values)})"


async def run(db: FreshDatabase, pairs: list[tuple[int, int]], args: argparse.Namespace, membership: str) -> None:
    fake = run_in_thread(expected_token=TOKEN, enforce_limits=True, latency=args.latency)
    name = unique_name("rolling")
    env = {
        "APP_ID": name,
        "TOPIC_PREFIX": f"{name}.",
        "DATABASE_URL": db.url,
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_BASE_URL": fake.base_url,
        "BROKER_SESSION_TIMEOUT": str(args.session_timeout),
        "GROUP_MEMBERSHIP": membership,
    }
    try:
        async with worker_fleet(env, WORKERS) as fleet:
            rebalances_before = sum(w.logs().count("Recovery]: Worker ready") for w in fleet)
            publishing = asyncio.ensure_future(stream(env, pairs, args.rate))
            windows = await roll(fleet, args.seconds / 4, args.pause)
            published = await publishing
            chats = set(published)
            await eventually(lambda: chats <= {m.chat_id for m in fake.messages if m.delivered}, args.wait, 0.5)
            await asyncio.sleep(3)  # late duplicates, if any, arrive now
            delivered = Counter(m.chat_id for m in fake.messages if m.delivered and m.chat_id in chats)
            seconds = latencies(fake, published)
            during = [s for chat, s in seconds.items() if windows[0][0] <= published[chat] <= windows[-1][1]]
            # Faust logs "Worker ready" at the end of each rebalance of each worker (including its own starts).
            rebalances = sum(w.logs().count("Recovery]: Worker ready") for w in fleet) - rebalances_before
            print(
                f"membership={membership} session_timeout={args.session_timeout:g}s bot_api_latency={args.latency:g}s "
                f"events={len(published)} "
                f"at {args.rate:g}/s: all {summary(list(seconds.values()))}; during the restarts {summary(during)}; "
                f"over 1 s {sum(s > 1.0 for s in seconds.values())}, "
                f"over 3 s {sum(s > 3.0 for s in seconds.values())}; "
                f"lost {len(chats - set(delivered))}, delivered twice {sum(n > 1 for n in delivered.values())}; "
                f"restarts took {', '.join(f'{end - began:.1f}' for began, end in windows)} s; "
                f"'Worker ready' lines (rebalances seen by the workers) {rebalances}",
                flush=True,
            )
    finally:
        fake.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--membership", nargs="+", choices=["static", "dynamic"], default=["static", "dynamic"])
    parser.add_argument("--rate", type=float, default=10.0, help="deadlines per second")
    parser.add_argument("--seconds", type=float, default=90.0, help="how long the stream lasts")
    parser.add_argument("--pause", type=float, default=10.0, help="seconds between a worker's return and the next stop")
    parser.add_argument("--session-timeout", type=float, default=30.0, help="BROKER_SESSION_TIMEOUT of the workers")
    parser.add_argument("--wait", type=float, default=300.0, help="seconds to wait for the last digests")
    parser.add_argument("--runs", type=int, default=1, help="runs of each membership")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds the sandbox Bot API takes to answer")
    args = parser.parse_args()
    cafes = int(args.rate * args.seconds)
    db = FreshDatabase(unique_name("lunch_rolling").replace("-", "_")).create()
    try:
        pairs = asyncio.run(fill(db.url, cafes * args.runs * len(args.membership)))
        batches = iter(pairs[i : i + cafes] for i in range(0, len(pairs), cafes))
        for _ in range(args.runs):
            for membership in args.membership:
                asyncio.run(run(db, next(batches), args, membership))
    finally:
        db.drop()


if __name__ == "__main__":
    main()
