"""Database reads and writes of the notifications capability."""

from __future__ import annotations

import asyncio
import itertools
import logging
from datetime import date
from decimal import Decimal
from typing import Any

import asyncpg
from sqlalchemy import ARRAY, BigInteger, Date, Select, and_, any_, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import aggregate_order_by

from agents.notifications.digest import CafeDigest, OrderLine
from models.database import DROPPED, Database, Row
from models.db import Cafe, Combo, MenuItem, Order, OrderItem, User, parse_price
from streams.batching import Batcher
from streams.text import one_line

__all__ = [
    "DIGESTS_STATEMENT",
    "DIGEST_STATEMENT",
    "MOVE_CHAT",
    "READ_LINGER",
    "UNREACHABLE",
    "DigestStore",
    "digest_query",
]

log = logging.getLogger(__name__)

#: Failures that say PostgreSQL was not reached (down, restarting, out of connections): reading each cafe alone
#: would only fail as often again.
UNREACHABLE = (
    *DROPPED,
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
)

#: Seconds a digest's read waits for the others that may ask at once, to go to PostgreSQL with them.
READ_LINGER = 0.005


def _digest_statement(*, several: bool) -> Select[Any]:
    """The cafe ``:cafe_id`` (``several``: the cafes ``:cafe_ids``) and its non-cancelled orders of
    ``:order_date``, with user, combo and items: one row per order (or one row with NULL order columns
    for a cafe without any), by cafe. Ids are bound as 64-bit (``bigint``, as the backend's ids are)."""
    if several:
        cafes = Cafe.id == any_(bindparam("cafe_ids", type_=ARRAY(BigInteger)))
    else:
        cafes = Cafe.id == bindparam("cafe_id", type_=BigInteger)
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
        .where(cafes)
        .group_by(Cafe.id, Order.id, User.name, Combo.name)
        .order_by(Cafe.id, Order.created_at, Order.id)
    )


#: Built once: composing the statement cost more CPU than running it. One cafe's digest, and several at
#: once: ``= ANY(array)`` costs PostgreSQL a plan per execution (~0.6 ms), so a lone digest (planned once,
#: generic after five) takes the first.
DIGEST_STATEMENT = _digest_statement(several=False)
DIGESTS_STATEMENT = _digest_statement(several=True)


#: A group became a supergroup: its new chat id, unless the row changed meanwhile.
MOVE_CHAT = (
    update(Cafe)
    .where(Cafe.id == bindparam("cafe_id"), Cafe.tg_chat_id == bindparam("old_chat_id"))
    .values(tg_chat_id=bindparam("new_chat_id"))  # bigint, as the columns are
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


def _label(value: str | None) -> str:
    """A name or note as the digest may show it (``streams.text.one_line``); empty when missing or blank."""
    return one_line(value) if value else ""


def _digest(rows: list[Row], order_date: date) -> CafeDigest:
    """One cafe's digest from its rows (read by name, not attribute: this runs for every digest); names and
    notes cleaned of hidden characters, a name left blank by that named as a missing one is."""
    first = rows[0]
    orders = tuple(
        OrderLine(
            order_id=row["order_id"],
            user_name=_label(row["user_name"]) or "(unknown user)",
            combo_name=_label(row["combo_name"]) or "(unknown combo)",
            items=tuple(name for name in map(_label, row["items"] or ()) if name),
            notes=_label(row["notes"]) or None,
            price=_price(row["total_price"], row["order_id"]),
        )
        for row in rows
        if row["order_id"] is not None
    )
    return CafeDigest(
        cafe_id=first["id"],
        cafe_name=_label(first["name"]) or f"cafe {first['id']}",
        chat_id=first["tg_chat_id"],
        notifications_enabled=bool(first["notifications_enabled"]),
        order_date=order_date,
        orders=orders,
    )


def _digests(rows: list[Row], order_date: date) -> dict[tuple[int, date], CafeDigest | Exception]:
    """Each cafe's digest from the rows of a statement (sorted by cafe), or the exception its rows raised."""
    found: dict[tuple[int, date], CafeDigest | Exception] = {}
    for cafe_id, cafe_rows in itertools.groupby(rows, key=lambda row: row["id"]):
        try:
            found[cafe_id, order_date] = _digest(list(cafe_rows), order_date)
        except Exception as exc:
            found[cafe_id, order_date] = exc
    return found


class DigestStore:
    """The digest's data from PostgreSQL: the digests asked for at once share one round trip.

    ``gather`` is how many may ask at once (``DIGEST_CONCURRENCY``): a read waits up to ``READ_LINGER``
    for them, and goes as soon as they have asked.
    """

    def __init__(self, db: Database, *, gather: int = 1) -> None:
        self._db = db
        self._reads: Batcher[tuple[int, date], CafeDigest | None] = Batcher(
            self._load_digests, gather=gather, linger=READ_LINGER
        )

    async def load_digest(self, cafe_id: int, order_date: date) -> CafeDigest | None:
        """The cafe's digest for the day, or None when the cafe does not exist."""
        return await self._reads((cafe_id, order_date))

    async def _load_digests(self, wanted: list[tuple[int, date]]) -> list[CafeDigest | Exception | None]:
        """The digests of ``wanted`` (cafe id, date), one statement per date among them; a cafe whose read
        or rows fail gets its exception, the others their digests."""
        found: dict[tuple[int, date], CafeDigest | Exception] = {}
        for day in sorted({day for _, day in wanted}):
            found |= await self._read(sorted({cafe_id for cafe_id, wanted_day in wanted if wanted_day == day}), day)
        return [found.get(key) for key in wanted]

    async def _read(self, cafe_ids: list[int], day: date) -> dict[tuple[int, date], CafeDigest | Exception]:
        """The cafes' digests of ``day`` in one statement. When a statement of several fails and PostgreSQL was
        reached, each cafe is read again alone at once: a bad id or row fails its own cafe, not its neighbours."""
        try:
            if len(cafe_ids) == 1:
                rows = await self._db.fetch(DIGEST_STATEMENT, {"cafe_id": cafe_ids[0], "order_date": day})
            else:
                rows = await self._db.fetch(DIGESTS_STATEMENT, {"cafe_ids": cafe_ids, "order_date": day})
        except Exception as exc:
            if len(cafe_ids) == 1 or isinstance(exc, UNREACHABLE):
                return dict.fromkeys(((cafe_id, day) for cafe_id in cafe_ids), exc)
            log.warning("digests of %d cafes for %s: %s; reading each alone", len(cafe_ids), day, type(exc).__name__)
            found: dict[tuple[int, date], CafeDigest | Exception] = {}
            for alone in await asyncio.gather(*(self._read([cafe_id], day) for cafe_id in cafe_ids)):
                found |= alone
            return found
        return _digests(rows, day)

    async def move_chat(self, cafe_id: int, old_chat_id: int, new_chat_id: int) -> bool:
        """Persist a group's migration to a supergroup; False when the row had changed meanwhile."""
        params = {"cafe_id": cafe_id, "old_chat_id": old_chat_id, "new_chat_id": new_chat_id}
        return bool(await self._db.execute(MOVE_CHAT, params))
