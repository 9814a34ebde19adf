"""Serve an async sandbox from its own event loop in a daemon thread (for sync code and plain pytest tests).

One wrapper for every sandbox: ``ServerThread(server)`` offers the server's own API, synchronously and
thread-safely. Each attribute is read, and each method run, on the server's loop; a coroutine method
(``wait_for``) blocks until it finishes there; lists, dicts and sets come back as copies (snapshots)::

    with ServerThread(SandboxGemini(latency=0.1)).start() as fake:   # or gemini.run_in_thread(latency=0.1)
        fake.base_url                 # cached at start, valid after stop()
        fake.script(answer("{}"))     # SandboxGemini.script, run on the server's loop
        fake.requests                 # a copy of SandboxGemini.requests
    # left the block: stop() stopped the server, then the loop and the thread

``start()``, ``stop()``, ``call()`` and ``server`` are the wrapper's own; every other public name is the
server's. After :meth:`stop` the server is read directly (its loop is gone).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar

__all__ = ["AsyncServer", "ServerThread"]


class AsyncServer(Protocol):
    @property
    def base_url(self) -> str: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


S = TypeVar("S", bound=AsyncServer)
T = TypeVar("T")


def _snapshot(value: T) -> T:
    return value.copy() if isinstance(value, list | dict | set) else value  # type: ignore[return-value]


class ServerThread(Generic[S]):
    """Owns one event loop in a daemon thread, serving ``server`` from :meth:`start` to :meth:`stop`."""

    def __init__(self, server: S, *, name: str = "sandbox") -> None:
        self.server = server
        self.base_url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    def start(self, timeout: float = 10.0) -> Self:
        """Start the thread and the server; return once it listens."""
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(timeout)
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
            raise
        self.base_url = self.server.base_url
        return self

    def call(self, fn: Callable[[S], T], timeout: float = 10.0) -> T:
        """Run ``fn(server)`` on the server's loop (directly once stopped); return the result."""
        if not self._thread.is_alive():
            return fn(self.server)

        async def run() -> T:
            return fn(self.server)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def _await(self, coro: Coroutine[Any, Any, T]) -> T:
        if not self._thread.is_alive():
            coro.close()
            raise RuntimeError("the sandbox thread is stopped")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()  # the coroutine has its own deadline

    def __getattr__(self, name: str) -> Any:
        """The server's attribute ``name``: read on its loop; methods run there, coroutines are awaited there."""
        if name.startswith("_") or name == "server":  # not set yet (e.g. during copy): no recursion
            raise AttributeError(name)
        member = inspect.getattr_static(type(self.server), name, None)
        if inspect.iscoroutinefunction(member):

            def wait(*args: Any, **kwargs: Any) -> Any:
                return _snapshot(self._await(getattr(self.server, name)(*args, **kwargs)))

            return wait
        if inspect.isfunction(member):

            def run(*args: Any, **kwargs: Any) -> Any:
                return _snapshot(self.call(lambda server: getattr(server, name)(*args, **kwargs)))

            return run
        return _snapshot(self.call(lambda server: getattr(server, name)))

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server, then the loop and the thread. Idempotent."""
        if not self._thread.is_alive():
            return
        try:
            asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(timeout)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
