"""The digest query on the real PostgreSQL: content, exclusions and one round trip."""

import asyncio
from datetime import date

import pytest

from agents.notifications.queries import DigestStore
from models.database import Database
from tests.integration.factory import Factory

pytestmark = pytest.mark.integration
DAY = date(2026, 11, 25)


@pytest.fixture
async def factory(test_database_url):
    f = Factory(test_database_url)
    yield f
    await f.close()


@pytest.fixture
async def store(test_database_url):
    statements: list[str] = []
    db = await Database.open(test_database_url, size=1, observe=statements.append)
    yield DigestStore(db), statements
    await db.close()


async def test_digest_has_orders_items_and_excludes_cancelled_and_other_days(factory, store):
    digest_store, statements = store
    cafe = await factory.cafe("Query Cafe", chat_id=-555)
    other = await factory.cafe("Other Cafe")
    combo = await factory.combo(cafe, "Business", "450.00")
    soup = await factory.item(cafe, "Soup", "a-soup")
    salad = await factory.item(cafe, "Salad", "b-salad")
    alice, bob = await factory.user("Alice"), await factory.user("Bob")
    await factory.order(alice, combo, DAY, items=(salad, soup), notes="no salt")
    await factory.order(bob, combo, DAY, price="99.99")
    await factory.order(bob, combo, DAY, status="cancelled")
    await factory.order(alice, combo, date(2026, 11, 24))
    await factory.order(alice, await factory.combo(other), DAY)

    statements.clear()
    digest = await digest_store.load_digest(cafe.id, DAY)
    assert len(statements) == 1  # one round trip, whatever the number of orders
    assert digest is not None
    assert (digest.cafe_name, digest.chat_id, digest.notifications_enabled) == ("Query Cafe", -555, True)
    assert [(o.user_name, o.combo_name, o.items, o.notes, str(o.price)) for o in digest.orders] == [
        ("Alice", "Business", ("Soup", "Salad"), "no salt", "450.00"),
        ("Bob", "Business", (), None, "99.99"),
    ]
    assert str(digest.total) == "549.99"


async def test_cafe_without_orders_and_unknown_cafe(factory, store):
    digest_store, _ = store
    cafe = await factory.cafe("Empty Cafe", chat_id=None, enabled=False)
    digest = await digest_store.load_digest(cafe.id, DAY)
    assert digest is not None
    assert (digest.orders, digest.chat_id, digest.notifications_enabled) == ((), None, False)
    assert await digest_store.load_digest(987654321, DAY) is None


async def test_many_orders_still_one_statement(factory, store):
    digest_store, statements = store
    cafe = await factory.cafe("Busy Cafe")
    combo = await factory.combo(cafe)
    items = [await factory.item(cafe, f"Item {i}") for i in range(3)]
    for i in range(40):
        await factory.order(await factory.user(f"U{i:02}"), combo, DAY, items=tuple(items))
    statements.clear()
    digest = await digest_store.load_digest(cafe.id, DAY)
    assert len(statements) == 1
    assert [o.user_name for o in digest.orders] == [f"U{i:02}" for i in range(40)]
    assert all(len(o.items) == 3 for o in digest.orders)


async def test_digests_asked_for_at_once_share_one_statement_per_date(test_database_url, factory):
    statements: list[str] = []
    db = await Database.open(test_database_url, size=2, observe=statements.append)
    digest_store = DigestStore(db, gather=5)  # as the worker makes it: DIGEST_CONCURRENCY
    try:
        cafes = [await factory.cafe(f"Cafe {n}", chat_id=-700 - n) for n in range(3)]
        for n, cafe in enumerate(cafes):
            combo = await factory.combo(cafe, f"Combo {n}")
            for i in range(n + 1):  # cafe n has n + 1 orders of the day
                await factory.order(await factory.user(f"C{n} U{i}"), combo, DAY)
        await factory.order(await factory.user("Next day"), combo, date(2026, 11, 26))
        asked = [(cafes[2].id, DAY), (cafes[0].id, DAY), (987654321, DAY), (cafes[1].id, DAY)]
        asked.append((cafes[2].id, date(2026, 11, 26)))
        digests = await asyncio.gather(*(digest_store.load_digest(cafe_id, day) for cafe_id, day in asked))
    finally:
        await db.close()
    assert len(statements) == 2  # the five went together: one statement per date
    assert digests[2] is None  # unknown cafe
    named = [[o.user_name for o in d.orders] for d in digests if d is not None]
    assert named == [["C2 U0", "C2 U1", "C2 U2"], ["C0 U0"], ["C1 U0", "C1 U1"], ["Next day"]]
    assert [d.chat_id for d in digests if d is not None] == [-702, -700, -701, -702]


async def test_a_cafe_whose_rows_make_no_digest_fails_alone(test_database_url, factory, monkeypatch):
    from agents.notifications import queries

    good, bad = await factory.cafe("Good Cafe"), await factory.cafe("Bad Cafe")
    made = queries._digest

    def digest(rows, order_date):
        if rows[0]["id"] == bad.id:
            raise ValueError("unreadable row")
        return made(rows, order_date)

    monkeypatch.setattr(queries, "_digest", digest)
    db = await Database.open(test_database_url, size=1)
    try:
        digest_store = DigestStore(db, gather=2)
        answers = await asyncio.gather(
            digest_store.load_digest(bad.id, DAY), digest_store.load_digest(good.id, DAY), return_exceptions=True
        )
    finally:
        await db.close()
    assert isinstance(answers[0], ValueError)
    assert answers[1].cafe_name == "Good Cafe"  # read in the same statement, unharmed


async def test_move_chat_only_from_the_old_id(factory, store):
    digest_store, _ = store
    cafe = await factory.cafe("Migrating Cafe", chat_id=-100)
    assert await digest_store.move_chat(cafe.id, -100, -1009999) is True
    assert await factory.chat_id_of(cafe.id) == -1009999
    assert await digest_store.move_chat(cafe.id, -100, -1008888) is False
    assert await factory.chat_id_of(cafe.id) == -1009999
