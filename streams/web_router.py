"""Faust's ``Router`` for a guarded web: ``app.table_route`` forwards with the fleet's token.

Faust's own forwards the caller's headers to the worker that owns the key: its cookie, its ``Authorization``
and its ``Host`` (which the owner may not answer: ``WEB_ALLOWED_HOSTS``). This one sends only ``Accept`` and
the fleet's ``Authorization: Bearer`` (every worker shares ``OPS_TOKEN``), and the owner's own ``Host``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from faust.app.router import Router
from faust.exceptions import SameNode
from yarl import URL

from streams.web_security import WebGuard

__all__ = ["guarded_router"]


def guarded_router(guard: WebGuard) -> type[Router]:
    """A ``Router`` class (``faust.App(Router=...)``) forwarding with ``guard``'s fleet headers."""
    if not callable(getattr(Router, "_route_req", None)):  # the internal this overrides: fail at start, not later
        raise RuntimeError("faust.app.router.Router._route_req is gone: review streams.web_router")

    class GuardedRouter(Router):
        fleet: ClassVar[WebGuard] = guard

        async def _route_req(self, dest_url: URL, web: Any, request: Any) -> Any:
            host, port = self._urlident(dest_url)
            if (host, port) == self._urlident(self.app.conf.canonical_url):
                raise SameNode()
            routed = request.url.with_host(host).with_port(int(port))
            headers = {"Accept": request.headers.get("Accept", "*/*"), **self.fleet.fleet_headers()}
            async with self.app.http_client.request(method=request.method, url=routed, headers=headers) as answer:
                return web.text(await answer.text(), content_type=answer.content_type, status=answer.status)

    return GuardedRouter
