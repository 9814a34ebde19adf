"""The web surface's credentials and rules (pure): sessions, CSRF tokens, bearer tokens, hosts, failed attempts.

Sessions are stateless, so a cookie any worker of the fleet issued is good on every other (they share
``OPS_TOKEN``): the cookie is ``{issued}.{nonce}.{mac}``, ``mac`` an HMAC-SHA256 over the issue time and the
nonce, keyed from ``OPS_TOKEN``; it expires ``lifetime`` seconds after issue. A CSRF token is an HMAC of what
it is bound to (the session cookie, or the sign-in form's nonce): nothing is stored, every check is in
constant time. Changing ``OPS_TOKEN`` signs everyone out. Nothing here does I/O or reads a clock: callers
pass ``now``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = [
    "OPEN_PATHS",
    "Credentials",
    "FailureLimit",
    "LocalFailures",
    "bearer_token",
    "host_name",
    "hosts_of",
    "safe_next",
    "wants_html",
]

#: The routes that answer without a token and whatever the ``Host``: probes and metrics carry no order data,
#: and Kubernetes and Prometheus call them with the pod's IP as ``Host``.
OPEN_PATHS = frozenset({"/livez", "/readyz", "/metrics"})
#: Unsafe methods: with a session cookie they need the CSRF token.
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_KEY_LABEL = b"lunch-streams web session v1"


def _mac(key: bytes, *parts: str) -> str:
    return hmac.new(key, "|".join(parts).encode(), hashlib.sha256).hexdigest()


class Credentials:
    """``OPS_TOKEN`` and what is derived from it: sessions and CSRF tokens. Its ``repr`` shows no secret."""

    __slots__ = ("_digest", "_key", "_token", "lifetime", "skew")

    def __init__(self, token: str, *, lifetime: float = 12 * 3600.0, skew: float = 60.0) -> None:
        self._token = token
        self._digest = hashlib.sha256(token.encode()).digest()
        self._key = hmac.new(token.encode(), _KEY_LABEL, hashlib.sha256).digest()
        self.lifetime = lifetime
        self.skew = skew  # how far ahead another worker's clock may be

    def __repr__(self) -> str:
        return f"Credentials(lifetime={self.lifetime:g}s, token=***)"

    def authorization(self) -> str:
        """The ``Authorization`` header a worker sends to another of its fleet (they share ``OPS_TOKEN``)."""
        return f"Bearer {self._token}"

    def token_matches(self, given: str | None) -> bool:
        """Whether ``given`` is ``OPS_TOKEN`` (constant time, whatever the lengths)."""
        if not given:
            return False
        return hmac.compare_digest(hashlib.sha256(given.encode()).digest(), self._digest)

    def issue(self, now: float, nonce: str | None = None) -> str:
        """A new session cookie value, issued at ``now``."""
        issued, nonce = str(int(now)), nonce or secrets.token_urlsafe(12)
        return f"{issued}.{nonce}.{_mac(self._key, 'session', issued, nonce)}"

    def session_valid(self, cookie: str | None, now: float) -> bool:
        """Whether ``cookie`` is a session this fleet issued, and not expired."""
        issued, nonce, mac = (cookie or "").split(".", 2) if (cookie or "").count(".") == 2 else ("", "", "")
        if not issued.isdigit() or not nonce:
            return False
        if not hmac.compare_digest(mac, _mac(self._key, "session", issued, nonce)):
            return False
        return int(issued) - self.skew <= now < int(issued) + self.lifetime

    def csrf(self, bound_to: str) -> str:
        """The CSRF token of forms sent with ``bound_to`` (a session cookie, or ``signin:{nonce}``)."""
        return _mac(self._key, "csrf", bound_to)

    def csrf_valid(self, bound_to: str | None, given: str | None) -> bool:
        if not bound_to or not given:
            return False
        return hmac.compare_digest(given.encode(), self.csrf(bound_to).encode())


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (None: no header, or another scheme)."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def host_name(host: str | None) -> str:
    """The name of a ``Host`` header, lower case, without port, brackets or trailing dot ('' when unusable)."""
    try:
        name = urlsplit(f"//{(host or '').strip()}").hostname or ""
    except ValueError:
        return ""
    return name.rstrip(".")


def wants_html(method: str, accept: str | None) -> bool:
    """Whether a request comes from a browser navigating (sent to the sign-in form, not answered 401 JSON)."""
    return method in ("GET", "HEAD") and "text/html" in (accept or "")


def safe_next(target: str | None, default: str = "/ops/") -> str:
    """Where to go after signing in: a path of this server only (no scheme, no host: no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    return target if not (parts.scheme or parts.netloc) and not any(c < " " for c in target) else default


@dataclass(frozen=True, slots=True)
class FailureLimit:
    """At most ``max_failures`` failed attempts per client address in a ``window`` (seconds); then refused
    until the window ends."""

    max_failures: int = 10
    window: float = 60.0

    def refused(self, failures: int) -> bool:
        return failures >= self.max_failures


@dataclass
class LocalFailures:
    """Failed attempts counted in this process, by address, in fixed windows: the fallback when Redis fails."""

    limit: FailureLimit
    _windows: dict[str, tuple[float, int]] = field(default_factory=dict)  # address -> (window end, failures)

    def _current(self, address: str, now: float) -> tuple[float, int]:
        end, count = self._windows.get(address, (0.0, 0))
        return (end, count) if now < end else (now + self.limit.window, 0)

    def record(self, address: str, now: float) -> int:
        """Count one failure of ``address``; the failures in its window so far."""
        end, count = self._current(address, now)
        self._windows[address] = (end, count + 1)
        self._forget(now)
        return count + 1

    def retry_after(self, address: str, now: float) -> float | None:
        """Seconds until ``address`` may try again, or None when it is not refused."""
        end, count = self._current(address, now)
        return end - now if self.limit.refused(count) else None

    def _forget(self, now: float) -> None:
        if len(self._windows) > 10_000:  # many addresses: drop the windows that are over
            for address in [a for a, (end, _) in self._windows.items() if end <= now]:
                del self._windows[address]


def hosts_of(names: Iterable[str]) -> frozenset[str]:
    """Allowed ``Host`` names, normalized like :func:`host_name`."""
    return frozenset(host_name(name) for name in names if host_name(name))
