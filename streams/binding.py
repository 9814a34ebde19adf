"""Services built at worker start, for the agent, timer and view code declared at import.

Faust declares an agent when its module is imported, while a capability's service
needs connections that only exist once the worker starts. The wiring module
(``streams.worker``) builds each service complete, with every port it needs, and
binds it to the capability's :class:`Late` handle before any agent runs; an agent
reads the handle, never a half-built service.
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["Late", "NotBound"]

T = TypeVar("T")


class NotBound(RuntimeError):
    """A service was used before the worker bound it: a wiring bug, not a runtime condition."""


class Late(Generic[T]):
    """A handle to one service, bound once per worker start (tests bind fakes)."""

    __slots__ = ("_name", "_value")

    def __init__(self, name: str) -> None:
        self._name = name
        self._value: T | None = None

    def __repr__(self) -> str:
        return f"Late({self._name}, bound={self._value is not None})"

    def bind(self, value: T) -> None:
        self._value = value

    def __call__(self) -> T:
        if self._value is None:
            raise NotBound(f"{self._name} used before the worker bound it (streams.worker)")
        return self._value
