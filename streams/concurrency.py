"""Handling several stream events at once while keeping each key's events in order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager

from faust.types import EventT

__all__ = ["KeyedLocks", "KeyedPool", "TaskPool"]


class KeyedLocks:
    """One ``asyncio.Lock`` per key, kept only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


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


class KeyedPool:
    """Events of a stream read without auto-ack, handled ``size`` at a time, one at a time per key.

    ``submit`` waits for a free slot, then runs the job in a task of its own while holding the event's key; the
    event is acknowledged (``done``) once its job says it was handled, so a crash or an unhandled one comes again.
    """

    def __init__(self, size: int) -> None:
        self._pool = TaskPool(size)
        self._keys = KeyedLocks()

    def __len__(self) -> int:
        return len(self._pool)

    async def submit(
        self,
        event: EventT,
        key: Hashable,
        job: Callable[[], Awaitable[bool]],
        done: Callable[[EventT], Awaitable[object]],
    ) -> None:
        """Handle ``event`` with ``job()`` (True: acknowledge it) once a slot is free and ``key`` is not held."""

        async def run() -> None:
            async with self._keys.hold(key):
                handled = await job()
            if handled:
                await done(event)

        await self._pool.start(run)

    async def join(self) -> None:
        """Wait until every submitted job has finished."""
        await self._pool.join()
