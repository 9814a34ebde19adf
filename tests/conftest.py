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


class FreshDatabase:
    """A fresh PostgreSQL database with the backend's schema."""

    admin_dsn = "postgresql://postgres@127.0.0.1:5432/postgres"

    def __init__(self, name: str) -> None:
        self.name = name
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"

    def create(self) -> FreshDatabase:
        import asyncpg

        from models.db import create_schema, make_engine

        async def create() -> None:
            conn = await asyncpg.connect(self.admin_dsn)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
                await conn.execute(f'CREATE DATABASE "{self.name}"')
            finally:
                await conn.close()
            engine = make_engine(self.url, pool_size=1)
            await create_schema(engine)
            await engine.dispose()

        asyncio.run(create())
        return self

    def drop(self) -> None:
        import asyncpg

        async def drop() -> None:
            conn = await asyncpg.connect(self.admin_dsn)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            finally:
                await conn.close()

        asyncio.run(drop())


@pytest.fixture(scope="session")
def test_database_url(services: Settings) -> Iterator[str]:
    """A fresh database for the session, dropped after it."""
    db = FreshDatabase(f"lunch_test_{os.getpid()}").create()
    yield db.url
    db.drop()
