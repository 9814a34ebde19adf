"""The engine's settings: TLS from DATABASE_URL's sslmode (none on loopback by default), no pre-ping, a fixed pool."""

from __future__ import annotations

import pytest

from models.db import make_engine, tls_mode


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


async def test_the_engine_has_no_pre_ping_and_a_fixed_pool():
    engine = make_engine("postgresql+asyncpg://postgres@127.0.0.1:5432/lunch?sslmode=require", pool_size=12)
    try:
        pool = engine.sync_engine.pool
        assert pool.size() == 12
        assert pool._max_overflow == 0  # a surge waits for a connection instead of opening and closing one
        assert not pool._pre_ping
        assert "sslmode" not in str(engine.url)  # asyncpg takes it as `ssl`, not in the URL
    finally:
        await engine.dispose()


async def test_autocommit_is_the_worker_engines_isolation_level():
    engine = make_engine("postgresql+asyncpg://postgres@127.0.0.1:5432/lunch", autocommit=True)
    other = make_engine("postgresql+asyncpg://postgres@127.0.0.1:5432/lunch")
    try:
        assert engine.sync_engine.dialect._on_connect_isolation_level == "AUTOCOMMIT"
        assert other.sync_engine.dialect._on_connect_isolation_level is None
    finally:
        await engine.dispose()
        await other.dispose()
