"""The Gemini integration's errors, and what an API error's details say (``google.rpc`` types).

Exceptions (API keys never appear in them: SDK errors are never chained, only sanitised text is kept)::

    GeminiError                 root of this integration
    ├── RecommendationFailed    this user's request or answer was bad (invalid / empty output, 400)
    ├── GeminiUnavailable       attempts used up on 429 / 5xx / transport errors: try again later
    └── AllKeysExhausted        no key usable now or within ``max_wait_s``: the batch stops
"""

from __future__ import annotations

import re
from typing import Any

from google.genai import errors

from agents.recommendations.usage import TokenUsage

__all__ = [
    "DEFAULT_RETRY_DELAY",
    "AllKeysExhausted",
    "GeminiError",
    "GeminiUnavailable",
    "RecommendationFailed",
    "error_detail",
    "error_details",
    "is_daily_quota",
    "parse_duration",
]

DEFAULT_RETRY_DELAY = 60.0
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


class GeminiError(Exception):
    """Root of the Gemini integration's errors; ``key`` is a fingerprint, ``code`` an HTTP status.

    ``usage``: the tokens of an answer that came back but could not be used (billed all the same).
    """

    def __init__(
        self, message: str, *, key: str | None = None, code: int | None = None, usage: TokenUsage | None = None
    ) -> None:
        super().__init__(message)
        self.key = key
        self.code = code
        self.usage = usage


class RecommendationFailed(GeminiError):
    """This user's recommendation cannot be made: invalid output, or the request was rejected."""


class GeminiUnavailable(GeminiError):
    """Every attempt hit a rate limit, a server error or a transport failure."""


class AllKeysExhausted(GeminiError):
    """No key is usable now or within the caller's bound (all disabled, or parked/cooling too long)."""


def parse_duration(value: object, default: float = DEFAULT_RETRY_DELAY) -> float:
    """A protobuf JSON duration (``"30s"``, ``"1.5s"``) in seconds; ``default`` if absent or odd."""
    match = _DURATION.match(value) if isinstance(value, str) else None
    return float(match.group(1)) if match else default


def error_details(exc: errors.APIError) -> list[dict[str, Any]]:
    """The ``details`` of an API error's body (``google.rpc`` objects), whichever way the SDK nested them."""
    body: Any = exc.details
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    found = body.get("details") if isinstance(body, dict) else None
    return [d for d in found if isinstance(d, dict)] if isinstance(found, list) else []


def error_detail(details: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The first detail of type ``kind`` (e.g. ``google.rpc.RetryInfo``), or an empty dict."""
    return next((d for d in details if str(d.get("@type", "")).endswith(kind)), {})


def is_daily_quota(details: list[dict[str, Any]]) -> bool:
    """Whether a 429 broke a per-day quota (the key is then parked until Pacific midnight)."""
    violations = error_detail(details, "google.rpc.QuotaFailure").get("violations") or []
    return any("PerDay" in str(v.get("quotaId", "")) for v in violations if isinstance(v, dict))
