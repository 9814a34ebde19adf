"""Requests made at about the same time, served by one call: one round trip for the events in flight."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["Batcher"]

R = TypeVar("R")
A = TypeVar("A")


@dataclass(slots=True)
class _Waiting(Generic[R, A]):
    request: R
    answer: asyncio.Future[A] = field(default_factory=asyncio.Future)


class Batcher(Generic[R, A]):
    """Collects requests and serves them with ``serve(requests) -> answers`` (one answer per request, in order;
    an answer that is an exception is raised to its own caller).

    A call waits up to ``linger`` seconds for the other requests that may come at once (``gather``: the
    events in flight) and goes as soon as that many have come; requests made while a call is on its way go
    with the next one, in the order they came, at most ``max_batch`` per call. When ``serve`` raises, every
    request of that call raises the same exception.
    """

    def __init__(
        self,
        serve: Callable[[list[R]], Awaitable[Sequence[A | Exception]]],
        *,
        gather: int,
        linger: float,
        max_batch: int = 64,
    ) -> None:
        if gather < 1 or max_batch < 1 or linger < 0:
            raise ValueError("gather and max_batch must be at least 1, linger not negative")
        self._serve = serve
        self._gather, self._linger, self._max_batch = gather, linger, max_batch
        self._waiting: list[_Waiting[R, A | Exception]] = []
        self._gathered = asyncio.Event()
        self._server: asyncio.Task[None] | None = None

    async def __call__(self, request: R) -> A:
        """The answer to ``request``, once the call that carries it has returned."""
        waiting: _Waiting[R, A | Exception] = _Waiting(request)
        self._waiting.append(waiting)
        if len(self._waiting) >= self._gather:
            self._gathered.set()
        if self._server is None or self._server.done():
            self._server = asyncio.ensure_future(self._serve_waiting())
        answer = await waiting.answer
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def _serve_waiting(self) -> None:
        while self._waiting:
            if len(self._waiting) < self._gather:  # a moment for the others that may come at once
                self._gathered.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._linger):
                        await self._gathered.wait()
            batch, self._waiting = self._waiting[: self._max_batch], self._waiting[self._max_batch :]
            try:
                answers = await self._serve([waiting.request for waiting in batch])
                if len(answers) != len(batch):
                    raise RuntimeError(f"{len(answers)} answers to {len(batch)} requests")
            except Exception as exc:
                for waiting in batch:
                    if not waiting.answer.done():
                        waiting.answer.set_exception(exc)
                continue
            except BaseException:
                for waiting in batch:
                    waiting.answer.cancel()
                raise
            for waiting, answer in zip(batch, answers, strict=True):  # lengths checked above
                if not waiting.answer.done():  # its caller may have been cancelled meanwhile
                    waiting.answer.set_result(answer)

    async def close(self) -> None:
        """Stop serving; requests still waiting are cancelled."""
        if self._server is not None:
            self._server.cancel()
            await asyncio.gather(self._server, return_exceptions=True)
        for waiting in self._waiting:
            waiting.answer.cancel()
        self._waiting.clear()
