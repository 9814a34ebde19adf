"""The guard of the web surface: nothing but the probes and metrics answers without ``OPS_TOKEN``.

``WebGuard`` is an aiohttp middleware (installed through Faust's ``web_application_options``). For every
request but ``/livez``, ``/readyz`` and ``/metrics`` (open whatever the ``Host``: Kubernetes and Prometheus
send the pod's IP):

1. a ``Host`` outside ``WEB_ALLOWED_HOSTS`` gets **421** Misdirected Request (DNS rebinding);
2. with ``OPS_TOKEN`` unset, **404**: the routes are off, not open;
3. ``Authorization: Bearer <OPS_TOKEN>`` (scripts, the other workers) or the session cookie of the sign-in
   form (HttpOnly, SameSite=Strict; a POST with it also needs the form's CSRF token, else **403**) pass. Without
   either, a browser navigating is sent to ``/signin/`` (**303**), anything else gets **401** with
   ``WWW-Authenticate: Bearer``. A wrong token is **401**, logged with the client's address (never the guess)
   and counted for the fleet (``streams.web_throttle``); an address past the limit gets **429** and
   ``Retry-After``, its token unchecked.

Every answer carries a CSP (``frame-ancestors 'none'``, no script at all, ``<style>`` only by hash),
``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer`` and ``Cache-Control: no-store``.
``streams.web_router`` makes Faust's ``app.table_route`` forward with the fleet's token.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from yarl import URL

from streams.settings import Settings
from streams.signin_page import SIGNIN_CSS, render_signin
from streams.web_auth import (
    OPEN_PATHS,
    UNSAFE_METHODS,
    Credentials,
    FailureLimit,
    bearer_token,
    host_name,
    hosts_of,
    safe_next,
    wants_html,
)
from streams.web_throttle import FailedAttempts

__all__ = ["AUTH", "SIGN_IN", "SIGN_OUT", "Auth", "WebGuard"]

log = logging.getLogger(__name__)

SIGN_IN, SIGN_OUT = "/signin/", "/signout/"
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="lunch-streams"'}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Auth:
    """How a request proved it knows ``OPS_TOKEN``; ``csrf`` is what its forms must carry (sessions only)."""

    how: str  # "bearer" or "session"
    csrf: str | None


#: Where a request's authentication is kept for the views (``request[AUTH]``).
AUTH: web.RequestKey[Auth] = web.RequestKey("lunch.auth", Auth)


def _style_hash(css: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(css.encode()).digest()).decode() + "'"


def _cookie_name(app_id: str) -> str:
    return "lunch_ops_" + re.sub(r"[^A-Za-z0-9_.-]", "_", app_id)


class WebGuard:
    """The middleware, the sign-in and sign-out handlers, and the fleet's headers."""

    __middleware_version__ = 1  # an aiohttp new-style middleware

    def __init__(
        self,
        *,
        app_id: str,
        credentials: Credentials | None,
        allowed_hosts: frozenset[str],
        failures: FailedAttempts,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app_id = app_id
        self.credentials = credentials
        self.allowed_hosts = allowed_hosts
        self.failures = failures
        self.cookie = _cookie_name(app_id)
        self._clock = clock
        self._styles = {_style_hash(SIGNIN_CSS)}

    @classmethod
    def of(cls, settings: Settings, limit: FailureLimit | None = None) -> WebGuard:
        return cls(
            app_id=settings.app_id,
            credentials=Credentials(settings.ops_token) if settings.ops_token else None,
            allowed_hosts=hosts_of(settings.allowed_hosts),
            failures=FailedAttempts(limit or FailureLimit(), prefix=f"lunch:web:failures:{settings.app_id}:"),
        )

    def __repr__(self) -> str:
        state = "on" if self.credentials else "off (OPS_TOKEN unset)"
        return f"WebGuard({self.app_id}, {state}, hosts={sorted(self.allowed_hosts)}, {self.failures!r})"

    def allow_style(self, css: str) -> None:
        """Let pages use ``<style>{css}</style>`` (its hash joins the CSP)."""
        self._styles.add(_style_hash(css))

    def content_security_policy(self) -> str:
        styles = " ".join(sorted(self._styles))
        return (
            f"default-src 'none'; style-src-elem {styles}; style-src-attr 'unsafe-inline'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        )

    def fleet_headers(self) -> dict[str, str]:
        """What a worker sends when it asks another of the fleet (they share ``OPS_TOKEN``)."""
        return {"Authorization": self.credentials.authorization()} if self.credentials else {}

    @staticmethod
    def csrf(request: web.Request) -> str | None:
        """The CSRF token the request's forms must carry (None: bearer-authenticated, none needed)."""
        auth = request.get(AUTH)
        return auth.csrf if isinstance(auth, Auth) else None

    # -- the middleware --------------------------------------------------------------------------------

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await self._guard(request, handler)
        except web.HTTPException as exc:  # aiohttp's own 404 and 405 get the headers too
            self._secure(exc)
            raise
        return self._secure(response)

    def _secure(self, response: web.StreamResponse) -> web.StreamResponse:
        response.headers["Content-Security-Policy"] = self.content_security_policy()
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS:
            return await handler(request)
        if host_name(request.headers.get("Host")) not in self.allowed_hosts:
            log.warning("web: refused Host %.80r from %s", request.headers.get("Host", ""), _address(request))
            return web.Response(status=421, text="421: this server does not answer for that Host\n")
        if self.credentials is None:
            return web.Response(status=404, text="404: off: OPS_TOKEN is not set on this worker\n")
        if request.path == SIGN_IN:
            return await handler(request)
        given = request.headers.get("Authorization")
        if given is not None:
            return await self._bearer(request, handler, bearer_token(given))
        session = request.cookies.get(self.cookie)
        if self.credentials.session_valid(session, self._clock()):
            assert session is not None
            csrf = self.credentials.csrf(session)
            if request.method in UNSAFE_METHODS and not await self._csrf_given(request, session):
                log.warning(
                    "web: %s %.100s without its CSRF token from %s",
                    request.method,
                    _logged_path(request),
                    _address(request),
                )
                return web.Response(status=403, text="403: the form's CSRF token is missing or wrong\n")
            request[AUTH] = Auth("session", csrf)
            return await handler(request)
        if wants_html(request.method, request.headers.get("Accept")):
            target = URL(SIGN_IN).with_query(next=request.path_qs)
            return web.Response(status=303, headers={"Location": str(target)})
        body = {"error": "unauthorized", "detail": f"send Authorization: Bearer <OPS_TOKEN>, or sign in at {SIGN_IN}"}
        return web.json_response(body, status=401, headers=CHALLENGE)

    async def _bearer(self, request: web.Request, handler: Handler, token: str | None) -> web.StreamResponse:
        assert self.credentials is not None
        refused = await self._refused(request)
        if refused is not None:
            return refused
        if not self.credentials.token_matches(token):
            await self._failed(request, "Authorization header")
            headers = {"WWW-Authenticate": 'Bearer realm="lunch-streams", error="invalid_token"'}
            return web.json_response({"error": "invalid_token"}, status=401, headers=headers)
        request[AUTH] = Auth("bearer", None)
        return await handler(request)

    async def _csrf_given(self, request: web.Request, session: str) -> bool:
        assert self.credentials is not None
        given = request.headers.get("X-CSRF-Token")
        if given is None and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            value = (await request.post()).get("csrf")  # cached: the view reads the same form
            given = value if isinstance(value, str) else None
        return self.credentials.csrf_valid(session, given)

    async def _refused(self, request: web.Request) -> web.Response | None:
        wait = await self.failures.retry_after(_address(request))
        if wait is None:
            return None
        headers = {"Retry-After": str(max(1, round(wait)))}
        return web.Response(status=429, text="429: too many failed attempts; try again later\n", headers=headers)

    async def _failed(self, request: web.Request, where: str) -> None:
        address = _address(request)
        count = await self.failures.record(address)
        limit = self.failures.limit
        refused = f"; refused for {limit.window:g} s" if limit.refused(count) else ""
        log.warning(
            "web: wrong OPS_TOKEN (%s) from %s for %s %.100s: %d failed attempt(s) in %g s%s",
            where, address, request.method, _logged_path(request), count, limit.window, refused,
        )  # fmt: skip

    # -- signing in and out ----------------------------------------------------------------------------

    def _signin_page(self, request: web.Request, *, next_path: str, message: str | None = None) -> web.Response:
        assert self.credentials is not None
        nonce = secrets.token_urlsafe(16)
        page = render_signin(
            app_id=self.app_id, next_path=next_path, csrf=self.credentials.csrf(f"signin:{nonce}"), message=message
        )
        response = web.Response(status=401, text=page, content_type="text/html", headers=CHALLENGE)
        response.set_cookie(
            f"{self.cookie}_signin", nonce, max_age=600, path=SIGN_IN, httponly=True, samesite="Strict",
            secure=request.secure,
        )  # fmt: skip
        return response

    async def sign_in_form(self, request: web.Request) -> web.StreamResponse:
        """GET ``/signin/``: the form (401: not signed in yet), or straight on when the session is good."""
        assert self.credentials is not None
        next_path = safe_next(request.query.get("next"))
        if self.credentials.session_valid(request.cookies.get(self.cookie), self._clock()):
            return web.Response(status=303, headers={"Location": next_path})
        return self._signin_page(request, next_path=next_path)

    async def sign_in(self, request: web.Request) -> web.StreamResponse:
        """POST ``/signin/``: the token checked (throttled), the session cookie set, on to ``next``."""
        assert self.credentials is not None
        form = await request.post()
        field = {name: value if isinstance(value, str) else "" for name, value in form.items()}
        next_path = safe_next(field.get("next"))
        refused = await self._refused(request)
        if refused is not None:
            return refused
        nonce = request.cookies.get(f"{self.cookie}_signin")
        if not self.credentials.csrf_valid(f"signin:{nonce}" if nonce else None, field.get("csrf")):
            return self._signin_page(request, next_path=next_path, message="The form expired: sign in again.")
        if not self.credentials.token_matches(field.get("token")):
            await self._failed(request, "sign-in form")
            return self._signin_page(request, next_path=next_path, message="Wrong OPS_TOKEN.")
        log.info("web: signed in from %s", _address(request))
        response = web.Response(status=303, headers={"Location": next_path})
        response.set_cookie(
            self.cookie, self.credentials.issue(self._clock()), max_age=int(self.credentials.lifetime), path="/",
            httponly=True, samesite="Strict", secure=request.secure,
        )  # fmt: skip
        response.del_cookie(f"{self.cookie}_signin", path=SIGN_IN)
        return response

    async def sign_out(self, request: web.Request) -> web.StreamResponse:
        """POST ``/signout/`` (authenticated, with the CSRF token): the session cookie dropped."""
        response = web.Response(status=303, headers={"Location": SIGN_IN})
        response.del_cookie(self.cookie, path="/")
        return response


def _address(request: web.Request) -> str:
    return request.remote or "unknown"


def _logged_path(request: web.Request) -> str:
    """The path as it came, percent-encoded: no line break or control character reaches the log."""
    return request.rel_url.raw_path
