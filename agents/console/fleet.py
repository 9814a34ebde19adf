"""Reading a table where it lives: on this worker when it owns the data, else from the worker that does.

``digest-deliveries`` is spread over every worker (one partition set each), so the console asks each
owner for its part; ``recommendation-batches`` has one partition and one owner. Owners are known from
Faust's partition assignment, the way ``app.table_route`` routes a request (any worker can serve
the page), and asked with ``headers`` (the fleet's ``Authorization``). A worker that does not answer
becomes a note, not an error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import faust
from yarl import URL

__all__ = ["ASK_TIMEOUT", "from_every_owner", "from_owner"]

T = TypeVar("T")
ASK_TIMEOUT = 3.0


def _is_me(app: faust.App, url: URL) -> bool:
    me = app.conf.canonical_url
    return (url.host, url.port) == (me.host, me.port)


async def _ask(app: faust.App, url: URL, path: str, field: str, headers: Mapping[str, str] | None) -> Any:
    target = str(url.join(URL(path)))
    async with asyncio.timeout(ASK_TIMEOUT), app.http_client.get(target, headers=headers) as response:
        response.raise_for_status()
        return (await response.json())[field]


async def from_owner(
    app: faust.App,
    table: faust.Table,
    key: str,
    path: str,
    field: str,
    local: Callable[[], T],
    headers: Mapping[str, str] | None = None,
) -> tuple[T | None, str | None]:
    """``local()`` when this worker owns ``key`` of ``table``, else ``field`` of the owner's ``path``."""
    try:
        owner = app.router.key_store(table.name, key)
    except KeyError:
        return local(), f"{table.name}: partition assignment unknown, showing this worker's copy"
    if _is_me(app, owner):
        return local(), None
    try:
        return await _ask(app, owner, path, field, headers), None
    except Exception as exc:  # another worker: unreachable or slow, the page goes on
        return None, f"{table.name}: the worker at {owner} did not answer ({type(exc).__name__})"


async def from_every_owner(
    app: faust.App,
    table: faust.Table,
    path: str,
    field: str,
    local: Callable[[], T],
    headers: Mapping[str, str] | None = None,
) -> tuple[list[T], list[str]]:
    """``local()`` and ``field`` of ``path`` on every other worker owning partitions of ``table``."""
    try:
        owners = {URL(host) for host, topics in app.router.table_metadata(table.name).items() if any(topics.values())}
    except KeyError:
        owners = set()
    if not owners:
        return [local()], [f"{table.name}: partition assignment unknown, showing this worker's copy"]
    others = sorted((url for url in owners if not _is_me(app, url)), key=str)
    answers = await asyncio.gather(*(_ask(app, url, path, field, headers) for url in others), return_exceptions=True)
    parts, notes = [local()], []
    for url, answer in zip(others, answers, strict=True):
        if isinstance(answer, BaseException):
            notes.append(f"{table.name}: the worker at {url} did not answer ({type(answer).__name__})")
        else:
            parts.append(answer)
    return parts, notes
