"""Who gets a recommendation, and the order statistics it is built from.

An active user has >= ``ACTIVE_MIN_ORDERS`` non-cancelled orders with ``order_date`` in the window of the
last ``WINDOW_DAYS`` days, today included. ``today`` is always passed in: the caller computes it in
``TIMEZONE``. The queries read PostgreSQL; ``compute_stats`` turns their rows into ``UserOrderStats`` (pure).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Date, Select, and_, bindparam, func, select

from agents.recommendations.advice import UserOrderStats
from models.database import Database
from models.db import Cafe, Combo, MenuItem, Order, OrderItem, User, parse_price
from streams.text import one_line

__all__ = [
    "ACTIVE_MIN_ORDERS",
    "WINDOW_DAYS",
    "ItemRow",
    "OrderRow",
    "UserSelection",
    "active_users_query",
    "compute_stats",
    "window_start",
]

log = logging.getLogger(__name__)

ACTIVE_MIN_ORDERS = 5
WINDOW_DAYS = 30

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_CENT = Decimal("0.01")
_ZERO = Decimal("0.00")


def window_start(today: date) -> date:
    """First day of the window ``[window_start(today), today]``: ``WINDOW_DAYS`` days, today included."""
    return today - timedelta(days=WINDOW_DAYS - 1)


def _window(today: date) -> dict[str, date]:
    """The values of the window's parameters for ``today``."""
    return {"window_start": window_start(today), "today": today}


# The statements are built once, with bound parameters: composing them cost more CPU than running them.
_USER_ID = bindparam("user_id", type_=BigInteger)  # 64-bit, as the backend's ids are
_IN_WINDOW: ColumnElement[bool] = and_(
    Order.status != "cancelled",
    Order.order_date >= bindparam("window_start", type_=Date),
    Order.order_date <= bindparam("today", type_=Date),
)  # non-cancelled orders dated in the window (orders dated after today are excluded)

#: Ids of the active users on ``:today``, ascending (one statement, served by ix_orders_date_user).
ACTIVE_USERS: Select[Any] = (
    select(Order.user_id)
    .where(_IN_WINDOW)
    .group_by(Order.user_id)
    .having(func.count() >= ACTIVE_MIN_ORDERS)
    .order_by(Order.user_id)
)


def active_users_query(today: date) -> Select[Any]:
    """``ACTIVE_USERS`` with its values bound (for EXPLAIN and the like)."""
    return ACTIVE_USERS.params(_window(today))


#: The user's orders of the window with user, combo and cafe names; no rows when there are none.
USER_ORDERS: Select[Any] = (
    select(
        User.name.label("user_name"),
        Order.id.label("order_id"),
        Order.order_date,
        Combo.name.label("combo_name"),
        Cafe.name.label("cafe_name"),
        Order.total_price,
        Order.notes,
        Order.created_at,
    )
    .select_from(Order)
    .join(User, User.id == Order.user_id)
    .outerjoin(Combo, Combo.id == Order.combo_id)
    .outerjoin(Cafe, Cafe.id == Order.cafe_id)
    .where(Order.user_id == _USER_ID, _IN_WINDOW)
    .order_by(Order.order_date, Order.created_at, Order.id)
)

#: The menu items (name, category) of the same orders as ``USER_ORDERS``.
USER_ITEMS: Select[Any] = (
    select(OrderItem.order_id, MenuItem.name, MenuItem.category)
    .join(MenuItem, MenuItem.id == OrderItem.menu_item_id)
    .where(OrderItem.order_id.in_(select(Order.id).where(Order.user_id == _USER_ID, _IN_WINDOW).scalar_subquery()))
    .order_by(OrderItem.order_id, MenuItem.name)
)


@dataclass(frozen=True)
class OrderRow:
    """One non-cancelled order of the window, as ``USER_ORDERS`` returns it."""

    order_id: int
    order_date: date
    combo_name: str | None
    cafe_name: str | None
    total_price: Decimal | None
    notes: str | None
    created_at: datetime | None


@dataclass(frozen=True)
class ItemRow:
    """One menu item of one of those orders."""

    order_id: int
    name: str | None
    category: str | None


def _label(value: object) -> str | None:
    """A name or note on one line without hidden characters (``streams.text.one_line``), or None when
    missing or blank."""
    if not isinstance(value, str):
        return None
    return one_line(value) or None


def _ranked(names: Iterable[str | None], top: int) -> list[tuple[str, int]]:
    """(name, count), most frequent first, ties by name; blank names skipped; at most ``top``."""
    counts = Counter(name for name in map(_label, names) if name is not None)
    return sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))[: max(top, 0)]


def _recency(order: OrderRow) -> tuple[date, float, int]:
    created = order.created_at.timestamp() if isinstance(order.created_at, datetime) else float("-inf")
    day = order.order_date if isinstance(order.order_date, date) else date.min
    return day, created, order.order_id


def compute_stats(
    user_id: int,
    name: str | None,
    orders: Sequence[OrderRow],
    items: Sequence[ItemRow],
    *,
    top: int = 5,
    notes: int = 10,
) -> UserOrderStats:
    """The user's stats from the rows of the two queries (pure).

    Favourites (combos, items, categories, cafes) count orders, resp. item rows for items and
    categories, and keep the ``top`` most frequent. Weekdays are all days with orders. Recent notes
    are the non-blank notes of the most recent orders first, at most ``notes``. Names and notes are
    cleaned (``streams.text.one_line``: one line, no control, format or tag character).

    Malformed values never raise: a blank or missing name is skipped from its ranking (a missing
    user name becomes ``"user {id}"``); an order with a missing, non-numeric, NaN or negative price
    still counts as an order but is left out of ``total_spent`` and of the average's denominator;
    items of orders not in ``orders`` are ignored.
    """
    order_ids = {order.order_id for order in orders}
    own_items = [item for item in items if item.order_id in order_ids]

    prices = [price for price in map(parse_price, (order.total_price for order in orders)) if price is not None]
    if len(prices) < len(orders):
        log.warning("user %s: %d order(s) with an invalid total_price left out", user_id, len(orders) - len(prices))
    total = sum(prices, _ZERO).quantize(_CENT, rounding=ROUND_HALF_UP)
    average = (total / len(prices)).quantize(_CENT, rounding=ROUND_HALF_UP) if prices else _ZERO

    weekdays = Counter(order.order_date.weekday() for order in orders if isinstance(order.order_date, date))
    recent = sorted(orders, key=_recency, reverse=True)
    recent_notes = [note for note in map(_label, (order.notes for order in recent)) if note is not None]

    return UserOrderStats(
        user_id=user_id,
        name=_label(name) or f"user {user_id}",
        order_count=len(orders),
        total_spent=total,
        average_spend=average,
        favourite_combos=_ranked((order.combo_name for order in orders), top),
        favourite_items=_ranked((item.name for item in own_items), top),
        favourite_categories=_ranked((item.category for item in own_items), top),
        weekdays=[(WEEKDAYS[day], n) for day, n in sorted(weekdays.items(), key=lambda p: (-p[1], p[0]))],
        recent_notes=recent_notes[: max(notes, 0)],
        cafes=_ranked((order.cafe_name for order in orders), top),
    )


class UserSelection:
    """Active users and their stats from PostgreSQL."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def active_user_ids(self, today: date) -> list[int]:
        """Ids of the users active on ``today`` (in ``TIMEZONE``), ascending: one statement."""
        return [row[0] for row in await self._db.fetch(ACTIVE_USERS, _window(today))]

    async def user_stats(self, user_id: int, today: date) -> UserOrderStats | None:
        """The user's stats of the window, or None when the user is unknown or has no orders in it.

        Two statements at most (orders, then their items); one when there are no orders.
        """
        params = {"user_id": user_id, **_window(today)}
        order_rows = await self._db.fetch(USER_ORDERS, params)
        if not order_rows:
            return None
        item_rows = await self._db.fetch(USER_ITEMS, params)
        orders = [
            OrderRow(
                order_id=row.order_id,
                order_date=row.order_date,
                combo_name=row.combo_name,
                cafe_name=row.cafe_name,
                total_price=row.total_price,
                notes=row.notes,
                created_at=row.created_at,
            )
            for row in order_rows
        ]
        items = [ItemRow(order_id=row.order_id, name=row.name, category=row.category) for row in item_rows]
        return compute_stats(user_id, order_rows[0].user_name, orders, items)
