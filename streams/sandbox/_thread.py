"""Run an async sandbox server on its own event loop in a daemon thread (for sync code and pytest).

Any server with ``async start()`` and ``async stop()`` fits::

    runner = ServerThread(SandboxGemini()).start()
    url = runner.server.base_url
    runner.call(lambda fake: fake.script(...))   # runs on the server's loop, returns the result
    runner.stop()
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Generic, Protocol, TypeVar

__all__ = ["AsyncServer", "ServerThread"]


class AsyncServer(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


S = TypeVar("S", bound=AsyncServer)
T = TypeVar("T")


class ServerThread(Generic[S]):
    """Owns one event loop in a daemon thread, serving ``server`` until :meth:`stop`."""

    def __init__(self, server: S, *, name: str = "sandbox") -> None:
        self.server = server
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    def start(self, timeout: float = 10.0) -> ServerThread[S]:
        """Start the thread and the server; return once it listens."""
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(timeout)
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
            raise
        return self

    def call(self, fn: Callable[[S], T], timeout: float = 10.0) -> T:
        """Run ``fn(server)`` on the server's loop (thread-safe access to its state); return the result."""

        async def run() -> T:
            return fn(self.server)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server, then the loop and the thread. Idempotent."""
        if not self._thread.is_alive():
            return
        try:
            asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(timeout)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)

    def __enter__(self) -> ServerThread[S]:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
