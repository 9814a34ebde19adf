"""Shared fixtures: the real services the suite runs on (started by scripts/test.sh)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator

import pytest

from streams.settings import Settings


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    """The local services' settings (from the environment, defaults on loopback)."""
    return Settings.from_env()


@pytest.fixture(scope="session")
def services(base_settings: Settings) -> Settings:
    """Fail fast, with the fix, when the local services are not running."""
    missing = [
        name
        for name, port in (("Kafka", 9092), ("PostgreSQL", 5432), ("Redis", 6379))
        if not _reachable("127.0.0.1", port)
    ]
    if missing:
        pytest.fail(f"{', '.join(missing)} not reachable on 127.0.0.1: run scripts/services.sh start")
    return base_settings


@pytest.fixture(scope="session")
def test_database_url(services: Settings) -> Iterator[str]:
    """A fresh PostgreSQL database with the backend's schema, dropped after the session."""
    import asyncpg

    from models.db import create_schema, make_engine

    name = f"lunch_test_{os.getpid()}"
    admin_dsn = "postgresql://postgres@127.0.0.1:5432/postgres"

    async def create() -> None:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        engine = make_engine(url, pool_size=1)
        await create_schema(engine)
        await engine.dispose()

    async def drop() -> None:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    asyncio.run(create())
    yield url
    asyncio.run(drop())
