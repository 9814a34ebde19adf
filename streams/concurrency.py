"""Handling several stream events at once while keeping each key's events in order."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from types import TracebackType

__all__ = ["KeyedLocks", "TaskPool"]


class KeyedLocks:
    """One ``asyncio.Lock`` per key, kept only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    def __len__(self) -> int:
        return len(self._locks)

    def hold(self, key: Hashable) -> _Held:
        """``async with locks.hold(key):`` runs its block once no one else holds ``key``."""
        return _Held(self._locks, key)


class _Held:
    """The async context manager of ``KeyedLocks.hold`` (a class: cheaper than a generator per event)."""

    __slots__ = ("_key", "_locks")

    def __init__(self, locks: dict[Hashable, tuple[asyncio.Lock, int]], key: Hashable) -> None:
        self._locks, self._key = locks, key

    async def __aenter__(self) -> None:
        lock, users = self._locks.get(self._key) or (asyncio.Lock(), 0)
        self._locks[self._key] = (lock, users + 1)
        try:
            await lock.acquire()
        except BaseException:
            self._leave()
            raise

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._locks[self._key][0].release()
        self._leave()

    def _leave(self) -> None:
        lock, users = self._locks[self._key]
        if users == 1:
            del self._locks[self._key]
        else:
            self._locks[self._key] = (lock, users - 1)


class TaskPool:
    """Runs at most ``size`` coroutines at once; ``start`` waits for a free slot."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a task pool needs at least one slot, not {size}")
        self._slots = asyncio.Semaphore(size)
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    async def start(self, job: Callable[[], Awaitable[None]]) -> None:
        """Wait for a slot, then run ``job()`` in a task of its own (in the caller's context)."""
        await self._slots.acquire()
        task = asyncio.ensure_future(self._run(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, job: Callable[[], Awaitable[None]]) -> None:
        try:
            await job()
        finally:
            self._slots.release()

    async def join(self) -> None:
        """Wait until every started job has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
