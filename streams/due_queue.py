"""Events that must wait for their time (a retry's ``not_before``) without holding up the stream or the worker.

Each waits in a task of its own, never in the stream's loop, so one due later holds up none behind it.
Kafka keeps the event until it is acknowledged, and Faust waits for every event handed out to be
acknowledged before a rebalance or a shutdown completes: so an event is held at most
``hold_at_most`` seconds (and not at all once the worker stops). One due later than that is
published again (``requeue``: the same key and value, so the same partition) and acknowledged,
and comes back to wait once more. At most ``capacity`` wait in one worker; past that ``put`` waits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from faust.types import EventT

__all__ = ["DueQueue"]

log = logging.getLogger(__name__)

#: Seconds an event is held before it is published again: what a rebalance may wait for it, at most.
HOLD_AT_MOST = 10.0
#: Events one worker holds at once.
CAPACITY = 10_000


class DueQueue:
    """Runs ``run()`` for an event once ``due_at`` (epoch seconds) has come; see the module's docstring.

    ``sleep`` must end early when the worker stops (``app.sleep``); ``assigned(tp)`` says whether this worker
    still holds the event's partition (one taken away meanwhile is left to its new owner).
    """

    def __init__(
        self,
        *,
        requeue: Callable[[EventT], Awaitable[object]],
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        stopping: Callable[[], bool] = lambda: False,
        assigned: Callable[[object], bool] = lambda tp: True,
        hold_at_most: float = HOLD_AT_MOST,
        capacity: int = CAPACITY,
    ) -> None:
        self.requeue = requeue
        self.clock = clock
        self.sleep = sleep
        self.stopping = stopping
        self.assigned = assigned
        self.hold_at_most = hold_at_most
        self.requeued = 0
        self._slots = asyncio.Semaphore(capacity)
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    async def put(
        self,
        event: EventT,
        due_at: float,
        run: Callable[[], Awaitable[None]],
        done: Callable[[EventT], Awaitable[object]],
    ) -> None:
        """Hold ``event`` until ``due_at``, then ``run()`` (which acknowledges it); ``done`` acknowledges a requeue."""
        await self._slots.acquire()
        task = asyncio.ensure_future(self._hold(event, due_at, run, done))  # in the caller's context (the event's)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _hold(
        self,
        event: EventT,
        due_at: float,
        run: Callable[[], Awaitable[None]],
        done: Callable[[EventT], Awaitable[object]],
    ) -> None:
        try:
            wait = due_at - self.clock()
            if wait > 0 and not self.stopping():
                await self.sleep(min(wait, self.hold_at_most))
            if not self.assigned(event.message.tp):
                return  # its new owner has it
            if self.stopping() or due_at > self.clock():
                await self._requeue(event, done)
                return
            await run()
        finally:
            self._slots.release()

    async def _requeue(self, event: EventT, done: Callable[[EventT], Awaitable[object]]) -> None:
        try:
            await self.requeue(event)
        except Exception as exc:  # the broker: the event stays unacknowledged and comes again
            message = event.message
            log.error(
                "%s: partition %s offset %s could not be published again (%s): left unacknowledged",
                message.topic,
                message.partition,
                message.offset,
                type(exc).__name__,
            )
            return
        self.requeued += 1
        await done(event)

    async def join(self) -> None:
        """Wait until every held event was run or published again."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Drop the events still held (unacknowledged: they come again)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
