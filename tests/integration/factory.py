"""Rows of the backend's schema for integration tests."""

from __future__ import annotations

import itertools
from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from models.db import Cafe, Combo, MenuItem, Order, OrderItem, User

_telegram_ids = itertools.count(10_000_000 + (id(object()) % 1_000_000) * 1000)


class Factory:
    """Creates rows in the test database; one engine per test (asyncpg binds to the test's loop)."""

    def __init__(self, database_url: str) -> None:
        self.engine = create_async_engine(database_url, poolclass=NullPool)

    async def close(self) -> None:
        await self.engine.dispose()

    async def _add(self, *rows: object) -> None:
        async with AsyncSession(self.engine, expire_on_commit=False) as session, session.begin():
            session.add_all(rows)
            await session.flush()
            for row in rows:
                await session.refresh(row)

    async def user(self, name: str = "Test User") -> User:
        user = User(telegram_id=next(_telegram_ids), name=name)
        await self._add(user)
        return user

    async def cafe(self, name: str = "Test Cafe", chat_id: int | None = -1001, enabled: bool = True) -> Cafe:
        cafe = Cafe(name=name, tg_chat_id=chat_id, notifications_enabled=enabled)
        await self._add(cafe)
        return cafe

    async def combo(self, cafe: Cafe, name: str = "Business lunch", price: str = "450.00") -> Combo:
        combo = Combo(cafe_id=cafe.id, name=name, price=Decimal(price))
        await self._add(combo)
        return combo

    async def item(self, cafe: Cafe, name: str, category: str = "main") -> MenuItem:
        item = MenuItem(cafe_id=cafe.id, name=name, category=category)
        await self._add(item)
        return item

    async def order(
        self,
        user: User,
        combo: Combo,
        day: date,
        *,
        items: tuple[MenuItem, ...] = (),
        notes: str | None = None,
        price: str | None = None,
        status: str = "active",
    ) -> Order:
        order = Order(
            user_id=user.id,
            cafe_id=combo.cafe_id,
            combo_id=combo.id,
            order_date=day,
            notes=notes,
            total_price=Decimal(price) if price is not None else combo.price,
            status=status,
        )
        await self._add(order)
        if items:
            await self._add(*(OrderItem(order_id=order.id, menu_item_id=i.id) for i in items))
        return order

    async def chat_id_of(self, cafe_id: int) -> int | None:
        async with AsyncSession(self.engine) as session:
            return (await session.execute(select(Cafe.tg_chat_id).where(Cafe.id == cafe_id))).scalar()
