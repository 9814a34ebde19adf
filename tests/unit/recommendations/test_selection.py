from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from agents.recommendations.selection import (
    ACTIVE_MIN_ORDERS,
    WINDOW_DAYS,
    ItemRow,
    OrderRow,
    compute_stats,
    window_start,
)

MON = date(2026, 11, 23)  # a Monday


def order(
    order_id: int,
    day: date = MON,
    *,
    combo: str | None = "Business",
    cafe: str | None = "Nord",
    price: object = "10.00",
    notes: str | None = None,
    created: datetime | None = None,
) -> OrderRow:
    return OrderRow(
        order_id=order_id,
        order_date=day,
        combo_name=combo,
        cafe_name=cafe,
        total_price=Decimal(price) if isinstance(price, str) else price,
        notes=notes,
        created_at=created or datetime(day.year, day.month, day.day, 9, order_id % 60, tzinfo=UTC),
    )


def test_window_is_thirty_days_today_included():
    assert (ACTIVE_MIN_ORDERS, WINDOW_DAYS) == (5, 30)
    assert window_start(date(2026, 11, 30)) == date(2026, 11, 1)
    assert window_start(date(2026, 3, 1)) == date(2026, 1, 31)
    assert (date(2026, 11, 30) - window_start(date(2026, 11, 30))).days + 1 == WINDOW_DAYS


def test_counts_totals_and_rankings():
    orders = [
        order(1, combo="Vegan", cafe="Sud", price="12.50"),
        order(2, combo="Business", price="10.00"),
        order(3, combo="Business", price="10.00"),
        order(4, combo="Light", price="7.51"),
    ]
    items = [
        ItemRow(1, "Soup", "soup"),
        ItemRow(1, "Salad", "salad"),
        ItemRow(2, "Soup", "soup"),
        ItemRow(3, "Borscht", "soup"),
        ItemRow(4, "Salad", "salad"),
    ]
    stats = compute_stats(7, "Ann", orders, items)
    assert (stats.user_id, stats.name, stats.order_count) == (7, "Ann", 4)
    assert stats.total_spent == Decimal("40.01")
    assert str(stats.average_spend) == "10.00"  # 10.0025 to the cent
    assert stats.favourite_combos == [("Business", 2), ("Light", 1), ("Vegan", 1)]  # ties by name
    assert stats.favourite_items == [("Salad", 2), ("Soup", 2), ("Borscht", 1)]
    assert stats.favourite_categories == [("soup", 3), ("salad", 2)]
    assert stats.cafes == [("Nord", 3), ("Sud", 1)]


def test_average_rounds_half_up_to_the_cent():
    stats = compute_stats(1, "A", [order(1, price="0.01"), order(2, price="0.04")], [])
    assert (str(stats.total_spent), str(stats.average_spend)) == ("0.05", "0.03")
    stats = compute_stats(1, "A", [order(i, price="10.00") for i in range(2)] + [order(9, price="10.01")], [])
    assert str(stats.average_spend) == "10.00"


def test_top_caps_favourites():
    orders = [order(i, combo=f"C{i % 7}", cafe=f"K{i % 3}") for i in range(20)]
    stats = compute_stats(1, "A", orders, [], top=2)
    assert stats.favourite_combos == [("C0", 3), ("C1", 3)]
    assert stats.cafes == [("K0", 7), ("K1", 7)]


def test_weekdays_by_count_then_week_order():
    days = [date(2026, 11, 27), date(2026, 11, 23), date(2026, 11, 24), date(2026, 11, 25), date(2026, 11, 20)]
    stats = compute_stats(1, "A", [order(i, d) for i, d in enumerate(days)], [])
    assert stats.weekdays == [("Friday", 2), ("Monday", 1), ("Tuesday", 1), ("Wednesday", 1)]


def test_recent_notes_newest_first_capped_and_blank_ignored():
    orders = [
        order(1, date(2026, 11, 20), notes="oldest"),
        order(2, date(2026, 11, 25), notes="  late same day  ", created=datetime(2026, 11, 25, 12, tzinfo=UTC)),
        order(3, date(2026, 11, 25), notes="early same day", created=datetime(2026, 11, 25, 8, tzinfo=UTC)),
        order(4, date(2026, 11, 26), notes=""),
        order(5, date(2026, 11, 27), notes="   \n"),
        order(6, date(2026, 11, 24), notes=None),
        order(7, date(2026, 11, 23), notes="middle"),
    ]
    stats = compute_stats(1, "A", orders, [])
    assert stats.recent_notes == ["late same day", "early same day", "middle", "oldest"]
    assert compute_stats(1, "A", orders, [], notes=2).recent_notes == ["late same day", "early same day"]
    many = [order(i, date(2026, 11, 1 + i), notes=f"n{i}") for i in range(15)]
    assert compute_stats(1, "A", many, []).recent_notes == [f"n{i}" for i in range(14, 4, -1)]


@pytest.mark.parametrize(
    "bad", [None, Decimal("NaN"), Decimal("sNaN"), Decimal("-1.00"), Decimal("Infinity"), float("nan"), -0.5]
)
def test_malformed_price_is_left_out_of_money_but_counted(bad):
    stats = compute_stats(1, "A", [order(1, price="10.00"), order(2, price=bad), order(3, price="20.00")], [])
    assert stats.order_count == 3
    assert (str(stats.total_spent), str(stats.average_spend)) == ("30.00", "15.00")


def test_all_prices_malformed_gives_zero():
    stats = compute_stats(1, "A", [order(1, price=None)], [])
    assert (str(stats.total_spent), str(stats.average_spend), stats.order_count) == ("0.00", "0.00", 1)


def test_malformed_names_are_skipped_and_foreign_items_ignored():
    orders = [order(1, combo=None, cafe="  "), order(2, combo="Business", cafe=None)]
    items = [ItemRow(1, None, "soup"), ItemRow(2, "Soup", None), ItemRow(99, "Ghost", "ghost"), ItemRow(2, " ", "")]
    stats = compute_stats(3, None, orders, items)
    assert stats.name == "user 3"
    assert stats.order_count == 2
    assert stats.favourite_combos == [("Business", 1)]
    assert stats.cafes == []
    assert stats.favourite_items == [("Soup", 1)]
    assert stats.favourite_categories == [("soup", 1)]
    assert compute_stats(3, "  Bob ", orders, []).name == "Bob"


def test_missing_dates_do_not_crash():
    rows = [
        OrderRow(1, None, "C", "K", Decimal("1.00"), "a", None),  # type: ignore[arg-type]
        order(2, notes="b", created=datetime(2026, 11, 23, 9)),  # naive created_at
        order(3, notes="c"),
    ]
    stats = compute_stats(1, "A", rows, [])
    assert stats.weekdays == [("Monday", 2)]
    assert stats.recent_notes[-1] == "a"
    assert sorted(stats.recent_notes) == ["a", "b", "c"]


def test_no_orders():
    stats = compute_stats(1, "A", [], [ItemRow(1, "Soup", "soup")])
    assert (stats.order_count, str(stats.total_spent), str(stats.average_spend)) == (0, "0.00", "0.00")
    assert stats.favourite_items == stats.weekdays == stats.recent_notes == []
