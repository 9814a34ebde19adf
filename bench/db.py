"""Database benchmark: the active-user query over 1,000,000 orders, the digest query for a cafe with 200 orders.

    .venv/bin/python -m bench.db            # targets: <= 100 ms and <= 5 ms (median)

Builds a throwaway database ``lunch_bench`` with the schema of ``models.db`` (and its indexes), fills it with
generate_series, runs each query several times and prints the medians and the query plans.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import date

import asyncpg
from sqlalchemy.dialects import postgresql

from agents.notifications.queries import digest_query
from agents.recommendations.selection import active_users_query
from models.db import create_schema, make_engine

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
NAME = "lunch_bench"
URL = f"postgresql://postgres@127.0.0.1:5432/{NAME}"
TODAY = date(2026, 11, 25)
USERS, CAFES, ORDERS, DAYS = 20_000, 200, 1_000_000, 90


def compiled(statement) -> str:
    return str(statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))


async def build() -> None:
    admin = await asyncpg.connect(ADMIN)
    await admin.execute(f"DROP DATABASE IF EXISTS {NAME} WITH (FORCE)")
    await admin.execute(f"CREATE DATABASE {NAME}")
    await admin.close()
    engine = make_engine(f"postgresql+asyncpg://postgres@127.0.0.1:5432/{NAME}", pool_size=1)
    await create_schema(engine)
    await engine.dispose()
    conn = await asyncpg.connect(URL)
    started = time.perf_counter()
    series = "FROM generate_series(1, {}) g"
    await conn.execute(f"INSERT INTO users (telegram_id, name) SELECT g, 'user ' || g {series.format(USERS)}")
    await conn.execute(f"INSERT INTO cafes (name, tg_chat_id) SELECT 'cafe ' || g, -g {series.format(CAFES)}")
    await conn.execute("INSERT INTO combos (cafe_id, name, price) SELECT id, 'combo', 450 FROM cafes")
    await conn.execute(
        "INSERT INTO menu_items (cafe_id, name, category) SELECT c.id, 'item ' || g, 'cat ' || (g % 3) "
        "FROM cafes c, generate_series(1, 4) g"
    )
    # Orders: random user and cafe, over the last DAYS days, 5 % cancelled.
    await conn.execute(
        f"""
        INSERT INTO orders (user_id, cafe_id, combo_id, order_date, total_price, status, notes)
        SELECT u, c, c, DATE '{TODAY}' - (g % {DAYS}), 450,
               CASE WHEN g % 20 = 0 THEN 'cancelled' ELSE 'active' END,
               CASE WHEN g % 7 = 0 THEN 'no onions' END
        FROM (SELECT g, 1 + (hashint4(g) & 2147483647) % {USERS} AS u,
                     1 + (hashint4(g + 1) & 2147483647) % {CAFES} AS c
              FROM generate_series(1, {ORDERS}) g) s
        """
    )
    # The digest cafe: 200 orders today with two items each.
    cafe_id = await conn.fetchval("INSERT INTO cafes (name, tg_chat_id) VALUES ('busy cafe', -1) RETURNING id")
    combo_id = await conn.fetchval(
        "INSERT INTO combos (cafe_id, name, price) VALUES ($1, 'combo', 450) RETURNING id", cafe_id
    )
    items = [
        await conn.fetchval(
            "INSERT INTO menu_items (cafe_id, name, category) VALUES ($1, $2, 'main') RETURNING id",
            cafe_id,
            f"dish {i}",
        )
        for i in range(2)
    ]
    await conn.execute(
        f"INSERT INTO orders (user_id, cafe_id, combo_id, order_date, total_price) "
        f"SELECT g, {cafe_id}, {combo_id}, DATE '{TODAY}', 450 FROM generate_series(1, 200) g"
    )
    await conn.execute(
        f"INSERT INTO order_items (order_id, menu_item_id) SELECT o.id, i FROM orders o, unnest($1::bigint[]) i "
        f"WHERE o.cafe_id = {cafe_id}",
        items,
    )
    await conn.execute("VACUUM ANALYZE")
    print(f"built {ORDERS + 200:,} orders in {time.perf_counter() - started:.1f}s")
    await conn.close()


async def measure(conn: asyncpg.Connection, sql: str, runs: int) -> tuple[float, int]:
    rows = 0
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        rows = len(await conn.fetch(sql))
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings), rows


async def main() -> None:
    await build()
    conn = await asyncpg.connect(URL)
    cafe_id = await conn.fetchval("SELECT id FROM cafes WHERE name = 'busy cafe'")
    active_sql = compiled(active_users_query(TODAY))
    digest_sql = compiled(digest_query(cafe_id, TODAY))
    await measure(conn, active_sql, 2)  # warm the cache
    active_ms, active_rows = await measure(conn, active_sql, 7)
    digest_ms, digest_rows = await measure(conn, digest_sql, 25)
    print(f"active users: {active_rows} users, median {active_ms:.1f} ms (target <= 100 ms)")
    print(f"digest:       {digest_rows} orders, median {digest_ms:.2f} ms (target <= 5 ms)")
    for label, sql in (("active users", active_sql), ("digest", digest_sql)):
        plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}"))
        print(f"\n--- plan: {label}\n{plan}")
    await conn.close()
    admin = await asyncpg.connect(ADMIN)
    await admin.execute(f"DROP DATABASE IF EXISTS {NAME} WITH (FORCE)")
    await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
