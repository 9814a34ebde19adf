"""The worker's PostgreSQL: SQLAlchemy statements run on an asyncpg pool, one round trip each.

The statements are SQLAlchemy's (built once in ``agents.*``), compiled once for asyncpg and run
straight on an asyncpg pool: no transaction around a read (asyncpg runs a statement alone as its
own), no pre-ping, no reset query when a connection returns to the pool (the worker keeps no
session state: no ``SET``, ``LISTEN``, cursors or advisory locks; an open transaction would still be
rolled back), and none of SQLAlchemy's per-statement work — its greenlet bridge, execution context
and result processing cost about twice the CPU of the query itself (``bench/README.md``, 7).

A restart of PostgreSQL closes every pooled connection: the pool replaces a connection it finds
closed when it hands it out, and ``fetch`` runs a read once more on another connection when its
connection was dropped under it. TLS is ``models.db.tls_mode``'s, from ``DATABASE_URL``'s ``sslmode``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.sql import Executable

from models.db import tls_mode

__all__ = ["DROPPED", "Database", "Row", "compiled"]

log = logging.getLogger(__name__)

#: What a statement raises when its (established) connection was dropped under it: a restart of PostgreSQL, an
#: administrator's kill, a reset socket. Worth one more try; a refused connection (PostgreSQL down) is not.
DROPPED = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.InterfaceError,
    ConnectionResetError,
)


class Row(asyncpg.Record):
    """A result row, read by attribute (``row.name``) as well as by name or position, like SQLAlchemy's.

    A column named like a method of ``asyncpg.Record`` (``items``, ``keys``, ``values``, ``get``) is read by
    name: ``row["items"]``.
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass(frozen=True, slots=True)
class Compiled:
    """A statement as asyncpg runs it: ``$1``-style SQL, its parameters' names in order, the values bound in it."""

    sql: str
    names: tuple[str, ...]
    bound: Mapping[str, Any]

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        return [params[name] if name in params else self.bound[name] for name in self.names]


_DIALECT = asyncpg_dialect()


@functools.lru_cache(maxsize=256)
def compiled(statement: Executable) -> Compiled:
    """``statement`` compiled for asyncpg, once per statement object (build statements once, bind at run time)."""
    done = statement.compile(dialect=_DIALECT)
    if any(bind.expanding for bind in done.binds.values()):
        raise ValueError("expanding parameters (IN with a list) are not supported here: use = ANY(:values)")
    return Compiled(str(done), tuple(done.positiontup or ()), dict(done.params))


async def _keep(connection: asyncpg.Connection) -> None:
    """The pool's reset: nothing to undo (asyncpg still rolls back a transaction left open)."""


class Database:
    """Reads (and single-statement writes) on an asyncpg pool of at most ``size`` connections, opened as needed."""

    def __init__(self, pool: asyncpg.Pool, *, observe: Callable[[str], object] | None = None) -> None:
        self._pool = pool
        self._observe = observe

    @classmethod
    async def open(cls, database_url: str, *, size: int, observe: Callable[[str], object] | None = None) -> Database:
        """A pool for ``database_url`` (SQLAlchemy's form, ``postgresql+asyncpg://``; its query is libpq's).

        ``observe`` is called with the SQL of each statement sent (tests count round trips with it).
        """
        url = make_url(database_url).set(drivername="postgresql").difference_update_query(["sslmode", "ssl"])
        pool = await asyncpg.create_pool(
            url.render_as_string(hide_password=False),
            ssl=tls_mode(database_url),
            min_size=0,
            max_size=size,
            record_class=Row,
            reset=_keep,
        )
        return cls(pool, observe=observe)

    async def close(self) -> None:
        await self._pool.close()

    async def fetch(self, statement: Executable, params: Mapping[str, Any] | None = None) -> list[Row]:
        """The rows of a read; run once more on another connection if its connection was dropped under it."""
        query = compiled(statement)
        arguments = query.arguments(params or {})
        try:
            return await self._fetch(query.sql, arguments)
        except DROPPED as exc:
            log.info("postgres: a connection was dropped (%s); reading again on another", type(exc).__name__)
        return await self._fetch(query.sql, arguments)

    async def _fetch(self, sql: str, arguments: list[Any]) -> list[Row]:
        if self._observe is not None:
            self._observe(sql)
        return await self._pool.fetch(sql, *arguments, record_class=Row)

    async def execute(self, statement: Executable, params: Mapping[str, Any] | None = None) -> int:
        """Run a write (never repeated); the number of rows it touched."""
        query = compiled(statement)
        if self._observe is not None:
            self._observe(query.sql)
        status = await self._pool.execute(query.sql, *query.arguments(params or {}))
        last = status.rsplit(" ", 1)[-1]  # "UPDATE 1"
        return int(last) if last.isdigit() else 0
