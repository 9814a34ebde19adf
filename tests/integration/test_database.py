"""The worker's database (models.database) on the real PostgreSQL: one round trip per read, no transactions, a
bounded pool, a dropped connection survived, TLS as DATABASE_URL says. Counted by the server (pg_stat_database,
pg_stat_ssl)."""

from __future__ import annotations

import asyncio
import os
from datetime import date

import asyncpg
import pytest
from sqlalchemy import text

from agents.notifications.queries import DigestStore
from models.database import Database
from models.db import make_engine
from tests.conftest import FreshDatabase

pytestmark = pytest.mark.integration
DAY = date(2026, 11, 25)
ADMIN = FreshDatabase.admin_dsn


@pytest.fixture(scope="module")
def database(services):
    """A database of its own: its transaction counters see nothing but this module."""
    db = FreshDatabase(f"lunch_engine_{os.getpid()}").create()

    async def fill() -> None:
        conn = await asyncpg.connect(db.url.replace("+asyncpg", ""), ssl=False)
        try:
            await conn.execute("INSERT INTO users (telegram_id, name) VALUES (1, 'Alice')")
            await conn.execute(
                "INSERT INTO cafes (name, tg_chat_id) SELECT 'cafe ' || g, -g FROM generate_series(1, 20) g"
            )
            await conn.execute("INSERT INTO combos (cafe_id, name, price) SELECT id, 'Business', 450 FROM cafes")
            await conn.execute(
                f"INSERT INTO orders (user_id, cafe_id, combo_id, order_date, total_price) "
                f"SELECT 1, cafe_id, id, DATE '{DAY}', 450 FROM combos"
            )
        finally:
            await conn.close()

    asyncio.run(fill())
    yield db
    db.drop()


async def counters(name: str) -> tuple[int, int, int]:
    """(transactions committed, rolled back, sessions opened) of database ``name``, as the server counts them."""
    conn = await asyncpg.connect(ADMIN, ssl=False)
    try:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        row = await conn.fetchrow(
            "SELECT xact_commit, xact_rollback, sessions FROM pg_stat_database WHERE datname = $1", name
        )
        return row["xact_commit"], row["xact_rollback"], row["sessions"]
    finally:
        await conn.close()


async def settled(name: str, before: tuple[int, int, int], *, commits: int) -> tuple[int, int, int]:
    """The counters' growth once at least ``commits`` transactions show (backends report them as they end)."""
    for _ in range(100):
        now = await counters(name)
        grown = tuple(a - b for a, b in zip(now, before, strict=True))
        if grown[0] >= commits:
            return grown  # type: ignore[return-value]
        await asyncio.sleep(0.1)
    raise AssertionError(f"the server counted {grown}, expected {commits} commits at least")


async def test_reads_are_single_statements_without_begin_or_rollback_and_the_pool_is_bounded(database):
    before = await counters(database.name)
    sent: list[str] = []
    db = await Database.open(database.url, size=8, observe=sent.append)
    store = DigestStore(db)
    slots = asyncio.Semaphore(16)  # more callers than connections: they wait for one

    async def load(cafe_id: int) -> None:
        async with slots:
            digest = await store.load_digest(cafe_id, DAY)
            assert digest is not None and len(digest.orders) == 1

    await asyncio.gather(*(load(cafe_id) for round_ in range(10) for cafe_id in range(1, 21)))
    await db.close()  # the backends end and report their counts
    commits, rollbacks, sessions = await settled(database.name, before, commits=len(sent))
    # At most one statement per digest: the digests asked for while a read is on its way share the next.
    assert 200 // 16 <= len(sent) <= 200
    assert rollbacks == 0  # no BEGIN ... ROLLBACK around a read, no pre-ping, no reset query
    # Each read is its own transaction; a few more for each new connection (asyncpg's type introspection).
    assert len(sent) <= commits <= len(sent) + 8 * 4
    assert sessions <= 8  # the pool is the concurrency: no connection opened and closed per read


async def test_the_former_engine_rolled_back_every_read(database):
    """What the counters above exclude: SQLAlchemy's transactional engine (pre-ping, a transaction per read)."""
    before = await counters(database.name)
    engine = make_engine(database.url, pool_size=1)
    try:
        for cafe_id in range(1, 11):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT name FROM cafes WHERE id = :id"), {"id": cafe_id})
    finally:
        await engine.dispose()
    _, rollbacks, _ = await settled(database.name, before, commits=1)
    assert rollbacks >= 10


async def test_connections_dropped_by_the_server_are_replaced_at_once(database):
    """A restart of PostgreSQL drops every pooled connection: the next reads go on, without pre-ping's round trips."""
    db = await Database.open(database.url, size=2)
    store = DigestStore(db)
    try:
        pause = text("SELECT pg_sleep(0.05)")
        await asyncio.gather(db.fetch(pause), db.fetch(pause))  # two pooled connections
        admin = await asyncpg.connect(ADMIN, ssl=False)
        try:
            dropped = await admin.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", database.name
            )
            assert len(dropped) == 2  # as a restart would
        finally:
            await admin.close()
        await asyncio.sleep(0.3)
        digests = await asyncio.gather(*(store.load_digest(cafe_id, DAY) for cafe_id in (3, 4, 5)))
        assert [d.cafe_id for d in digests if d is not None] == [3, 4, 5]  # no exception
    finally:
        await db.close()


async def ssl_in_use(url: str) -> bool:
    db = await Database.open(url, size=1)
    try:
        [row] = await db.fetch(text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
        return bool(row.ssl)
    finally:
        await db.close()


async def test_tls_follows_the_urls_sslmode(database):
    admin = await asyncpg.connect(ADMIN, ssl=False)
    try:
        server_ssl = await admin.fetchval("SHOW ssl")
    finally:
        await admin.close()
    assert await ssl_in_use(database.url) is False  # loopback: no TLS unless asked
    assert server_ssl == "on", "scripts/services.sh starts Debian's cluster, which has ssl = on"
    assert await ssl_in_use(f"{database.url}?sslmode=require") is True
    assert await ssl_in_use(f"{database.url}?sslmode=prefer") is True
