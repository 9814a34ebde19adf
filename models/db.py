"""SQLAlchemy 2 ORM of the backend's schema (the backend owns it; we read it).

``create_schema`` builds it for tests and demo data only, with the indexes our
queries rely on (the backend should carry the same ones).
"""

from __future__ import annotations

import ipaddress
import os
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Numeric,
    Text,
    func,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "Cafe",
    "Combo",
    "MenuItem",
    "Order",
    "OrderItem",
    "User",
    "create_schema",
    "make_engine",
    "parse_price",
    "tls_mode",
]


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    telegram_id: Mapped[int] = mapped_column(BigInteger, unique=True, nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    role: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'user'"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class Cafe(Base):
    __tablename__ = "cafes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    tg_chat_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    notifications_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class Combo(Base):
    __tablename__ = "combos"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    cafe_id: Mapped[int] = mapped_column(ForeignKey("cafes.id"), nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2), nullable=False)


class MenuItem(Base):
    __tablename__ = "menu_items"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    cafe_id: Mapped[int] = mapped_column(ForeignKey("cafes.id"), nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    category: Mapped[str] = mapped_column(Text, nullable=False)


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        # The digest: one cafe's orders of one day.
        Index("ix_orders_cafe_date", "cafe_id", "order_date"),
        # Active users and their stats: orders of the last 30 days, per user.
        Index("ix_orders_date_user", "order_date", "user_id"),
        Index("ix_orders_user_date", "user_id", "order_date"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    cafe_id: Mapped[int] = mapped_column(ForeignKey("cafes.id"), nullable=False)
    combo_id: Mapped[int] = mapped_column(ForeignKey("combos.id"), nullable=False)
    order_date: Mapped[date] = mapped_column(Date, nullable=False)
    notes: Mapped[str | None] = mapped_column(Text, nullable=True)
    total_price: Mapped[Decimal] = mapped_column(Numeric(10, 2), nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'active'"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class OrderItem(Base):
    __tablename__ = "order_items"

    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True)
    menu_item_id: Mapped[int] = mapped_column(ForeignKey("menu_items.id"), primary_key=True)


def _local(host: str) -> bool:
    """True for a Unix socket directory or a loopback address (``localhost``, ``127.0.0.1``, ``::1``)."""
    host = host.strip()
    if host.startswith("/") or host.startswith("@"):  # a socket directory, or Linux's abstract namespace
        return True
    if host.startswith("["):  # [::1]:5432
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:  # 127.0.0.1:5432 (asyncpg's multi-host form, in the query)
        host = host.partition(":")[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def tls_mode(database_url: str) -> str | None:
    """The TLS mode (libpq's ``sslmode``) to reach ``database_url`` with; None: asyncpg's default.

    The URL's own ``sslmode`` decides (``ssl``, asyncpg's spelling, too); then ``PGSSLMODE``. Without
    either, a database on loopback or a Unix socket is reached without TLS (``disable``): that traffic never
    leaves the machine, so TLS protects nothing and costs a handshake per connection and encryption on every
    round trip (Debian's PostgreSQL has ``ssl = on``, and asyncpg negotiates TLS whenever it is offered). Any
    other host gets None: asyncpg's default, libpq's ``prefer`` (TLS when the server offers it, unverified);
    set ``sslmode=verify-full`` for a database across a network.
    """
    url = make_url(database_url)
    mode = url.query.get("sslmode") or url.query.get("ssl")
    if mode:
        return str(mode if isinstance(mode, str) else mode[-1])
    if os.environ.get("PGSSLMODE"):
        return None
    query_hosts = url.query.get("host") or ()
    hosts = [url.host] if url.host else list((query_hosts,) if isinstance(query_hosts, str) else query_hosts)
    if not hosts:  # asyncpg then reads PGHOST, else tries the local sockets and localhost
        hosts = [h for h in os.environ.get("PGHOST", "").split(",") if h] or ["localhost"]
    return "disable" if all(_local(h) for h in hosts) else None


def make_engine(database_url: str, *, pool_size: int = 5, autocommit: bool = False) -> AsyncEngine:
    """A SQLAlchemy engine on asyncpg (tests, demo data, the console), TLS per ``tls_mode``.

    ``pool_pre_ping`` so a restarted PostgreSQL is survived; ``autocommit``: no transaction around a
    statement. The worker's own reads do not come here: see ``models.database``.
    """
    url = make_url(database_url)
    ssl = tls_mode(database_url)
    options: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"} if autocommit else {}
    return create_async_engine(
        url.difference_update_query(["sslmode", "ssl"]),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args={"ssl": ssl} if ssl else {},
        **options,
    )


async def create_schema(engine: AsyncEngine) -> None:
    """Create the backend's tables and our indexes if missing (tests, demo)."""
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)


def parse_price(value: object) -> Decimal | None:
    """A usable price from a ``NUMERIC`` column, or None for a missing, non-numeric, non-finite or negative one."""
    if value is None or isinstance(value, bool):
        return None
    try:
        price = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return price if price.is_finite() and price >= 0 else None
