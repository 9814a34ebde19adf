"""A bare digest pipeline, written the way a team without Faust would: the yardstick of ``bench.cost``.

    .venv/bin/python -m bench.bare --topic T --group G --database-url URL --api-base URL --token TOKEN

An aiokafka consumer group that commits after each batch, an asyncpg pool running the worker's own digest SQL
(``DIGEST_STATEMENT`` compiled for asyncpg), the project's renderer (``render_digest``), one aiohttp POST per part
to the Bot API, ``--concurrency`` cafes in flight. It prints ``ready`` once it holds partitions.

What it does not have, by construction (so it is cheaper than the worker, and not a replacement for it): no
dedupe table (a redelivered event sends its digest again), no retries (a failure is counted and dropped), no
dead letters, no throttle or shared budget (it sends as fast as the Bot API answers), no validation of events
beyond ``json.loads``, no per-cafe ordering, no log line per digest, no metrics, no health or web server, no
handling of 429, chat migration or a rejected token, no rebalance guards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from datetime import date
from decimal import Decimal

import aiohttp
import asyncpg
from aiokafka import AIOKafkaConsumer
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

from agents.notifications.digest import CafeDigest, OrderLine, render_digest
from agents.notifications.i18n import digest_format_from
from agents.notifications.queries import DIGEST_STATEMENT
from models.db import tls_mode

__all__ = ["digest_sql", "main"]


def digest_sql() -> tuple[str, tuple[str, ...], dict[str, object]]:
    """The worker's digest statement as asyncpg text (``$1``, ``$2``, ...), the names of its parameters in order,
    and the values of those bound in the statement itself (``'cancelled'``)."""
    compiled = DIGEST_STATEMENT.compile(dialect=asyncpg_dialect())
    return str(compiled), tuple(compiled.positiontup or ()), dict(compiled.params)


class Bare:
    def __init__(self, pool: asyncpg.Pool, session: aiohttp.ClientSession, url: str, concurrency: int) -> None:
        self.pool, self.session, self.url = pool, session, url
        self.sql, self.names, self.bound = digest_sql()
        self.fmt = digest_format_from("en", "")
        self.slots = asyncio.Semaphore(concurrency)
        self.sent = self.failed = 0

    async def handle(self, value: bytes) -> None:
        async with self.slots:
            try:
                event = json.loads(value)
                day = date.fromisoformat(event["date"])
                params = {**self.bound, "cafe_id": int(event["cafe_id"]), "order_date": day}
                rows = await self.pool.fetch(self.sql, *(params[name] for name in self.names))
                if not rows or rows[0]["tg_chat_id"] is None or not rows[0]["notifications_enabled"]:
                    return
                orders = tuple(
                    OrderLine(
                        order_id=r["order_id"],
                        user_name=r["user_name"],
                        combo_name=r["combo_name"],
                        items=tuple(r["items"] or ()),
                        notes=r["notes"],
                        price=Decimal(r["total_price"]),
                    )
                    for r in rows
                    if r["order_id"] is not None
                )
                if not orders:
                    return
                first = rows[0]
                digest = CafeDigest(first["id"], first["name"], first["tg_chat_id"], True, day, orders)
                for part in render_digest(digest, fmt=self.fmt):
                    payload = {"chat_id": digest.chat_id, "text": part, "parse_mode": "HTML"}
                    async with self.session.post(self.url, json=payload) as response:
                        await response.read()
                        if response.status != 200:
                            raise RuntimeError(f"HTTP {response.status}")
                self.sent += 1
            except Exception as exc:  # no retries, no dead letters: counted and dropped
                self.failed += 1
                print(f"failed: {type(exc).__name__}: {exc}", file=sys.stderr)


async def run(args: argparse.Namespace) -> None:
    # TLS as the worker decides it for the same URL (models.db.tls_mode), so both pay the same for it.
    dsn, ssl, size = args.database_url.replace("+asyncpg", ""), tls_mode(args.database_url), args.concurrency
    pool = await asyncpg.create_pool(dsn, ssl=ssl, min_size=size, max_size=size)
    consumer = AIOKafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        async with aiohttp.ClientSession() as session:
            bare = Bare(pool, session, f"{args.api_base}/bot{args.token}/sendMessage", args.concurrency)
            while not consumer.assignment():
                await consumer.getmany(timeout_ms=100)
            print("ready", flush=True)
            while True:
                batch = await consumer.getmany(timeout_ms=500)
                records = [m for messages in batch.values() for m in messages]
                if records:
                    await asyncio.gather(*(bare.handle(m.value) for m in records))
                    await consumer.commit()
    finally:
        await consumer.stop()
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--api-base", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
