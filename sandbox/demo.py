"""Demo data and events for the README's main command: ``python -m sandbox.demo seed|deadline|task``.

``task`` publishes a recommendations task and prints the demo users' cache
entries as they arrive in Redis.

``seed`` creates the schema if missing, the demo users (once) and a new demo cafe
with ten days of their orders, so every run has a fresh (cafe, today) digest to
send and the users are active for recommendations.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.db import Cafe, Combo, MenuItem, Order, OrderItem, User, create_schema, make_engine
from streams.producers import EventPublisher
from streams.settings import Settings

DEMO_CAFE = "Demo Bistro <Sandbox>"
DEMO_CHAT_ID = -1001234567890
DEMO_USERS = [(9_000_001, "Alice & Co"), (9_000_002, "Bob"), (9_000_003, "Chloé")]


async def seed(settings: Settings, today: date) -> int:
    """Create a demo cafe with menu and orders (last 10 days incl. today); return the cafe id."""
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        await create_schema(engine)
        async with AsyncSession(engine) as session, session.begin():
            found = {
                u.telegram_id: u
                for u in (
                    await session.scalars(select(User).where(User.telegram_id.in_([tid for tid, _ in DEMO_USERS])))
                ).all()
            }
            users = [found.get(tid) or User(telegram_id=tid, name=name) for tid, name in DEMO_USERS]
            session.add_all(users)
            cafe = Cafe(name=DEMO_CAFE, tg_chat_id=DEMO_CHAT_ID, notifications_enabled=True)
            session.add(cafe)
            await session.flush()
            combos = [
                Combo(cafe_id=cafe.id, name="Business lunch", price=Decimal("450.00")),
                Combo(cafe_id=cafe.id, name="Light", price=Decimal("320.50")),
            ]
            items = [
                MenuItem(cafe_id=cafe.id, name="Borscht", category="soup"),
                MenuItem(cafe_id=cafe.id, name="Caesar salad", category="salad"),
                MenuItem(cafe_id=cafe.id, name="Chicken cutlet", category="main"),
                MenuItem(cafe_id=cafe.id, name="Compote", category="drink"),
            ]
            session.add_all(combos + items)
            await session.flush()
            notes = ["no onions, please <3", None, "extra bread"]
            for day in range(10):
                for i, user in enumerate(users):
                    combo = combos[(day + i) % 2]
                    order = Order(
                        user_id=user.id,
                        cafe_id=cafe.id,
                        combo_id=combo.id,
                        order_date=today - timedelta(days=day),
                        notes=notes[i],
                        total_price=combo.price,
                    )
                    session.add(order)
                    await session.flush()
                    for item in items[i % 2 :: 2]:
                        session.add(OrderItem(order_id=order.id, menu_item_id=item.id))
            return cafe.id
    finally:
        await engine.dispose()


async def show_recommendations(settings: Settings, timeout: float = 60.0) -> None:
    """Print the demo users' cached recommendations once they arrive in Redis."""
    from redis.asyncio import Redis

    from agents.recommendations.cache import cache_key

    engine = make_engine(settings.database_url, pool_size=1)
    try:
        async with AsyncSession(engine) as session:
            ids = (await session.scalars(select(User.id).where(User.telegram_id.in_([t for t, _ in DEMO_USERS])))).all()
    finally:
        await engine.dispose()
    redis = Redis.from_url(settings.redis_url)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pending = set(ids)
        while pending and loop.time() < deadline:
            for user_id in sorted(pending):
                raw = await redis.get(cache_key(user_id))
                if raw is not None:
                    ttl = await redis.ttl(cache_key(user_id))
                    print(f"redis {cache_key(user_id)} (ttl {ttl}s): {raw.decode()}", flush=True)
                    pending.discard(user_id)
            await asyncio.sleep(0.5)
        if pending:
            print(f"demo: no recommendation cached in {timeout:.0f}s for users {sorted(pending)}", flush=True)
    finally:
        await redis.aclose()


async def _main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.demo", description=__doc__)
    parser.add_argument("action", choices=["seed", "deadline", "task"])
    args = parser.parse_args()
    settings = Settings.from_env()
    today = datetime.now(settings.zone).date()
    cafe_id = await seed(settings, today)
    if args.action == "seed":
        print(f"demo data ready: cafe {cafe_id}")
        return
    async with EventPublisher(settings) as publisher:
        if args.action == "deadline":
            await publisher.deadline_passed(cafe_id, today)
            print(f"published deadline-passed for cafe {cafe_id}, {today}")
            console = f"http://{settings.advertised_host}:{settings.web_port}/ops/?q={cafe_id}"
            print(f"its digest on the operator console (OPS_TOKEN to sign in): {console}")
            return
        await publisher.daily_task("generate_recommendations")
        print("published daily task generate_recommendations", flush=True)
    await show_recommendations(settings)


if __name__ == "__main__":
    asyncio.run(_main())
