"""TLS from DATABASE_URL's sslmode (none on loopback by default); the worker's statements compiled once for asyncpg."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import bindparam, select

from agents.notifications.queries import DIGEST_STATEMENT, MOVE_CHAT
from models.database import compiled
from models.db import Cafe, make_engine, tls_mode


@pytest.fixture(autouse=True)
def _no_libpq_environment(monkeypatch):
    monkeypatch.delenv("PGSSLMODE", raising=False)
    monkeypatch.delenv("PGHOST", raising=False)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://postgres@127.0.0.1:5432/lunch",  # the default DATABASE_URL
        "postgresql+asyncpg://postgres@localhost/lunch",
        "postgresql+asyncpg://postgres@[::1]:5432/lunch",
        "postgresql+asyncpg://postgres@127.0.0.2/lunch",
        "postgresql+asyncpg://postgres@/lunch?host=/var/run/postgresql",  # a Unix socket
        "postgresql+asyncpg://postgres@/lunch",  # no host: the local sockets, then localhost
    ],
)
def test_loopback_and_unix_sockets_go_without_tls_by_default(url):
    assert tls_mode(url) == "disable"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://app@db.internal:5432/lunch",
        "postgresql+asyncpg://app@10.0.0.5/lunch",
        "postgresql+asyncpg://app@/lunch?host=127.0.0.1:5432&host=db.internal:5432",
    ],
)
def test_other_hosts_get_asyncpgs_default(url):
    assert tls_mode(url) is None  # asyncpg's default: libpq's prefer


@pytest.mark.parametrize("mode", ["disable", "prefer", "require", "verify-full"])
def test_the_urls_own_sslmode_decides(mode):
    assert tls_mode(f"postgresql+asyncpg://postgres@127.0.0.1/lunch?sslmode={mode}") == mode
    assert tls_mode(f"postgresql+asyncpg://app@db.internal/lunch?sslmode={mode}") == mode
    assert tls_mode(f"postgresql+asyncpg://app@db.internal/lunch?ssl={mode}") == mode  # asyncpg's spelling


def test_libpq_environment_is_honoured(monkeypatch):
    monkeypatch.setenv("PGSSLMODE", "require")
    assert tls_mode("postgresql+asyncpg://postgres@127.0.0.1/lunch") is None  # asyncpg reads PGSSLMODE itself
    monkeypatch.delenv("PGSSLMODE")
    monkeypatch.setenv("PGHOST", "db.internal")
    assert tls_mode("postgresql+asyncpg://postgres@/lunch") is None


def test_statements_are_compiled_once_for_asyncpg_with_their_bound_values():
    query = compiled(DIGEST_STATEMENT)
    assert query is compiled(DIGEST_STATEMENT)
    assert "$1" in query.sql and ":cafe_id" not in query.sql
    arguments = query.arguments({"cafe_id": 12, "order_date": date(2026, 11, 25)})
    assert sorted(map(str, arguments)) == ["12", "2026-11-25", "cancelled"]  # 'cancelled' is bound in the statement
    assert compiled(MOVE_CHAT).names == ("new_chat_id", "cafe_id", "old_chat_id")


def test_expanding_parameters_are_refused():
    with pytest.raises(ValueError, match="ANY"):
        compiled(select(Cafe.id).where(Cafe.id.in_(bindparam("ids", expanding=True))))


async def test_tls_mode_reaches_the_engine_and_the_url_keeps_no_sslmode():
    engine = make_engine("postgresql+asyncpg://postgres@127.0.0.1:5432/lunch?sslmode=require", pool_size=2)
    try:
        assert "sslmode" not in str(engine.url)  # asyncpg takes it as `ssl`, not from the URL
        assert engine.sync_engine.pool._pre_ping  # tests, demo and console: not a hot path
    finally:
        await engine.dispose()


async def test_autocommit_engine():
    engine = make_engine("postgresql+asyncpg://postgres@127.0.0.1:5432/lunch", autocommit=True)
    other = make_engine("postgresql+asyncpg://postgres@127.0.0.1:5432/lunch")
    try:
        assert engine.sync_engine.dialect._on_connect_isolation_level == "AUTOCOMMIT"
        assert other.sync_engine.dialect._on_connect_isolation_level is None
    finally:
        await engine.dispose()
        await other.dispose()
