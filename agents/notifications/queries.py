"""Database reads and writes of the notifications capability."""

from __future__ import annotations

import logging
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, Integer, Select, and_, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import aggregate_order_by

from agents.notifications.digest import CafeDigest, OrderLine
from models.database import Database
from models.db import Cafe, Combo, MenuItem, Order, OrderItem, User, parse_price

__all__ = ["DIGEST_STATEMENT", "MOVE_CHAT", "DigestStore", "digest_query"]

log = logging.getLogger(__name__)


def _digest_statement() -> Select[Any]:
    """The cafe ``:cafe_id`` and its non-cancelled orders of ``:order_date``, with user, combo and items:
    one row per order (or one row with NULL order columns when there are none)."""
    cafe_id = bindparam("cafe_id", type_=Integer)
    order_date = bindparam("order_date", type_=Date)
    items = (
        func.array_agg(aggregate_order_by(MenuItem.name, MenuItem.category, MenuItem.name))
        .filter(MenuItem.id.is_not(None))
        .label("items")
    )
    return (
        select(
            Cafe.id,
            Cafe.name,
            Cafe.tg_chat_id,
            Cafe.notifications_enabled,
            Order.id.label("order_id"),
            User.name.label("user_name"),
            Combo.name.label("combo_name"),
            Order.notes,
            Order.total_price,
            items,
        )
        .select_from(Cafe)
        .outerjoin(
            Order,
            and_(
                Order.cafe_id == Cafe.id,
                Order.order_date == order_date,
                Order.status != "cancelled",
            ),
        )
        .outerjoin(User, User.id == Order.user_id)
        .outerjoin(Combo, Combo.id == Order.combo_id)
        .outerjoin(OrderItem, OrderItem.order_id == Order.id)
        .outerjoin(MenuItem, MenuItem.id == OrderItem.menu_item_id)
        .where(Cafe.id == cafe_id)
        .group_by(Cafe.id, Order.id, User.name, Combo.name)
        .order_by(Order.created_at, Order.id)
    )


#: Built once: composing the statement cost more CPU than running it.
DIGEST_STATEMENT = _digest_statement()


#: A group became a supergroup: its new chat id, unless the row changed meanwhile.
MOVE_CHAT = (
    update(Cafe)
    .where(Cafe.id == bindparam("cafe_id"), Cafe.tg_chat_id == bindparam("old_chat_id"))
    .values(tg_chat_id=bindparam("new_chat_id"))
)


def digest_query(cafe_id: int, order_date: date) -> Select[Any]:
    """The digest statement with its values bound (for EXPLAIN and the like)."""
    return DIGEST_STATEMENT.params(cafe_id=cafe_id, order_date=order_date)


def _price(value: object, order_id: int) -> Decimal:
    """The order's price for the digest: an invalid one counts as 0.00, with a warning."""
    price = parse_price(value)
    if price is None:
        log.warning("order %s has an invalid total_price; counted as 0.00", order_id)
        return Decimal("0.00")
    return price


class DigestStore:
    """The digest's data from PostgreSQL: one round trip per digest."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def load_digest(self, cafe_id: int, order_date: date) -> CafeDigest | None:
        """The cafe's digest for the day, or None when the cafe does not exist."""

        rows = await self._db.fetch(DIGEST_STATEMENT, {"cafe_id": cafe_id, "order_date": order_date})
        if not rows:
            return None
        first = rows[0]  # rows read by name, not attribute: this runs for every digest
        orders = tuple(
            OrderLine(
                order_id=row["order_id"],
                user_name=row["user_name"] or "(unknown user)",
                combo_name=row["combo_name"] or "(unknown combo)",
                items=tuple(name for name in (row["items"] or ()) if name),
                notes=row["notes"],
                price=_price(row["total_price"], row["order_id"]),
            )
            for row in rows
            if row["order_id"] is not None
        )
        return CafeDigest(
            cafe_id=first["id"],
            cafe_name=first["name"] or f"cafe {first['id']}",
            chat_id=first["tg_chat_id"],
            notifications_enabled=bool(first["notifications_enabled"]),
            order_date=order_date,
            orders=orders,
        )

    async def move_chat(self, cafe_id: int, old_chat_id: int, new_chat_id: int) -> bool:
        """Persist a group's migration to a supergroup; False when the row had changed meanwhile."""
        params = {"cafe_id": cafe_id, "old_chat_id": old_chat_id, "new_chat_id": new_chat_id}
        return bool(await self._db.execute(MOVE_CHAT, params))
