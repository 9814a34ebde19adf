"""Active-user selection and user stats on the real PostgreSQL: window boundaries and round trips."""

from datetime import date, timedelta

import pytest

from agents.recommendations.selection import UserSelection
from models.database import Database

pytestmark = pytest.mark.integration
TODAY = date(2026, 11, 25)  # a Wednesday


def ago(days: int) -> date:
    return TODAY - timedelta(days=days)


@pytest.fixture
async def selection(test_database_url):
    statements: list[str] = []
    db = await Database.open(test_database_url, size=1, observe=statements.append)
    yield UserSelection(db), statements
    await db.close()


@pytest.fixture
async def combo(factory):
    return await factory.combo(await factory.cafe("Selection Cafe"), "Business", "10.00")


async def test_active_user_boundaries(factory, selection, combo):
    sel, statements = selection

    async def user_with(name: str, *days: date, **extra) -> int:
        user = await factory.user(name)
        for day in days:
            await factory.order(user, combo, day)
        for day, status in extra.get("statuses", ()):
            await factory.order(user, combo, day, status=status)
        return user.id

    four = (ago(0), ago(1), ago(2), ago(3))
    five = await user_with("five", *four, ago(10))
    only_four = await user_with("four", *four)
    edge_29 = await user_with("edge 29", *four, ago(29))
    edge_30 = await user_with("edge 30", *four, ago(30))
    cancelled = await user_with("cancelled", *four, statuses=[(ago(5), "cancelled")])
    future = await user_with("future", *four, TODAY + timedelta(days=1))
    many = await user_with("many", *(ago(d) for d in range(0, 30, 3)), statuses=[(ago(1), "cancelled")])
    mine = {five, only_four, edge_29, edge_30, cancelled, future, many}

    statements.clear()
    active = await sel.active_user_ids(TODAY)
    assert len(statements) == 1
    assert active == sorted(active)
    assert [u for u in active if u in mine] == sorted([five, edge_29, many])
    # The same users a day later: the order of 29 days ago falls out, nobody's "future" order falls in yet.
    later = await sel.active_user_ids(TODAY + timedelta(days=1))
    assert [u for u in later if u in mine] == sorted([five, future, many])


async def test_user_stats_content(factory, selection):
    sel, statements = selection
    nord, sud = await factory.cafe("Nord"), await factory.cafe("Sud")
    business, vegan = await factory.combo(nord, "Business", "10.00"), await factory.combo(sud, "Vegan", "12.50")
    soup, salad = await factory.item(nord, "Soup", "soup"), await factory.item(nord, "Salad", "salad")
    tofu = await factory.item(sud, "Tofu", "main")
    ann = await factory.user("Ann")
    await factory.order(ann, business, ago(0), items=(soup, salad), notes="no onions")  # Wednesday
    await factory.order(ann, business, ago(7), items=(soup,), notes="  ")  # Wednesday
    await factory.order(ann, vegan, ago(1), items=(tofu,), notes="extra sauce")  # Tuesday
    await factory.order(ann, business, ago(29), price="7.51", notes="oldest")  # Tuesday
    await factory.order(ann, vegan, ago(2), items=(tofu, salad), notes="cancelled", status="cancelled")
    await factory.order(ann, vegan, ago(30), items=(tofu,), notes="too old")
    await factory.order(ann, vegan, TODAY + timedelta(days=1), notes="tomorrow")
    await factory.order(await factory.user("Other"), vegan, ago(0), items=(tofu,))

    statements.clear()
    stats = await sel.user_stats(ann.id, TODAY)
    assert len(statements) == 2
    assert stats is not None
    assert (stats.user_id, stats.name, stats.order_count) == (ann.id, "Ann", 4)
    assert (str(stats.total_spent), str(stats.average_spend)) == ("40.01", "10.00")
    assert stats.favourite_combos == [("Business", 3), ("Vegan", 1)]
    assert stats.favourite_items == [("Soup", 2), ("Salad", 1), ("Tofu", 1)]
    assert stats.favourite_categories == [("soup", 2), ("main", 1), ("salad", 1)]
    assert stats.cafes == [("Nord", 3), ("Sud", 1)]
    assert stats.weekdays == [("Tuesday", 2), ("Wednesday", 2)]  # ties in week order
    assert stats.recent_notes == ["no onions", "extra sauce", "oldest"]


async def test_user_stats_none_for_unknown_user_or_empty_window(factory, selection, combo):
    sel, statements = selection
    idle = await factory.user("Idle")
    await factory.order(idle, combo, ago(30))
    await factory.order(idle, combo, ago(0), status="cancelled")
    statements.clear()
    assert await sel.user_stats(idle.id, TODAY) is None
    assert len(statements) == 1  # no items query without orders
    assert await sel.user_stats(987654321, TODAY) is None
    assert (await factory.user("Nobody")).id not in await sel.active_user_ids(TODAY)


async def test_user_stats_two_statements_whatever_the_volume(factory, selection):
    sel, statements = selection
    cafe = await factory.cafe("Busy")
    combos = [await factory.combo(cafe, f"Combo {i}") for i in range(3)]
    items = [await factory.item(cafe, f"Item {i}", f"cat {i % 2}") for i in range(4)]
    heavy = await factory.user("Heavy")
    for day in range(30):
        await factory.order(heavy, combos[day % 3], ago(day), items=tuple(items[: 1 + day % 4]), notes=f"n{day}")
    statements.clear()
    stats = await sel.user_stats(heavy.id, TODAY)
    assert len(statements) == 2
    assert stats is not None and stats.order_count == 30
    assert stats.favourite_items[0] == ("Item 0", 30)
    assert stats.recent_notes == [f"n{d}" for d in range(10)]
    assert heavy.id in await sel.active_user_ids(TODAY)
