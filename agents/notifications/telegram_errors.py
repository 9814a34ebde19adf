"""Telegram Bot API answers as typed errors: the exception tree and ``classify_response``.

Exception tree (``retryable`` on the right)::

    TelegramError                     method, status, description, retryable
    ├── TelegramTransportError        no answer: connect failed, timed out, dropped   yes
    │                                 (a timeout or a drop says the message may have been delivered)
    └── TelegramAPIError              an answer that is not a clean success
        ├── TelegramRetryAfter        parameters.retry_after, or a bare 429           yes
        ├── TelegramChatMigrated      parameters.migrate_to_chat_id: resend to new id  no
        ├── TelegramBadRequest        400 (chat not found, bad HTML, too long)        no
        ├── TelegramUnauthorized      401, 404: the token is wrong                    no
        ├── TelegramForbidden         403 (bot kicked, blocked, chat deleted)         no
        ├── TelegramServerError       5xx                                             yes
        └── TelegramUnexpectedResponse any other status; a 2xx we cannot read        not for 4xx

A 2xx whose body is not ``{"ok": true, "result": {"message_id": int}}`` is a
``TelegramUnexpectedResponse`` that is retryable although the message may have
been sent, like a read timeout: a possible duplicate beats a possible loss.
Errors never carry the token or a URL.

The answer is outside input: a ``retry_after`` above ``max_retry_after`` (``Infinity``
included) is clamped to it, one that is no wait (negative, NaN, not a number) counts as
absent (the status decides), and so does a ``migrate_to_chat_id`` that is no Telegram id
(not an int, 0, beyond 2**53); a 2xx whose ``message_id`` is no such id is malformed.
Descriptions are one line of at most 300 characters.
"""

from __future__ import annotations

import math
from typing import Final

__all__ = [
    "DEFAULT_MAX_RETRY_AFTER",
    "DEFAULT_RETRY_AFTER",
    "MAX_TELEGRAM_ID",
    "TelegramAPIError",
    "TelegramBadRequest",
    "TelegramChatMigrated",
    "TelegramError",
    "TelegramForbidden",
    "TelegramRetryAfter",
    "TelegramServerError",
    "TelegramTransportError",
    "TelegramUnauthorized",
    "TelegramUnexpectedResponse",
    "classify_response",
    "retry_after_of",
]

# Seconds to wait on a 429 that names no ``parameters.retry_after``.
DEFAULT_RETRY_AFTER: Final = 5.0
# The longest wait taken from a 429 unless the caller says (``TELEGRAM_MAX_RETRY_AFTER``).
DEFAULT_MAX_RETRY_AFTER: Final = 3600.0
# Chat and message ids have at most 52 significant bits (Bot API): anything beyond is no id.
MAX_TELEGRAM_ID: Final = 2**53 - 1
_DESCRIPTION_CAP: Final = 300


class TelegramError(Exception):
    """Root of every Telegram failure; never carries the token or a URL."""

    retryable: bool = False

    def __init__(self, method: str, status: int | None, description: str) -> None:
        super().__init__(method, status, description)
        self.method = method
        self.status = status
        self.description = description

    def __str__(self) -> str:
        where = f"HTTP {self.status}" if self.status is not None else "no response"
        return f"{self.method}: {self.description} ({where})"


class TelegramTransportError(TelegramError):
    """No usable answer: connection refused, timeout, connection dropped."""

    retryable = True

    def __init__(self, method: str, description: str) -> None:
        super().__init__(method, None, description)


class TelegramAPIError(TelegramError):
    """The server answered, and the answer is not a clean success."""


class TelegramRetryAfter(TelegramAPIError):
    """Flood control: wait ``retry_after`` seconds, then send the same message again.

    ``asked`` is the wait the answer named (``inf`` for one beyond a float); ``retry_after`` is at most
    the caller's ``max_retry_after``.
    """

    retryable = True

    def __init__(
        self, method: str, status: int, description: str, *, retry_after: float, asked: float | None = None
    ) -> None:
        super().__init__(method, status, description)
        self.retry_after = retry_after
        self.asked = retry_after if asked is None else asked

    @property
    def clamped(self) -> bool:
        """True if the answer asked for a longer wait than ``retry_after``."""
        return self.asked > self.retry_after


class TelegramChatMigrated(TelegramAPIError):
    """The group became a supergroup: persist ``new_chat_id`` and resend there."""

    def __init__(self, method: str, status: int, description: str, *, new_chat_id: int) -> None:
        super().__init__(method, status, description)
        self.new_chat_id = new_chat_id


class TelegramBadRequest(TelegramAPIError):
    """400: the request itself is wrong (chat not found, unparsable HTML, too long)."""


class TelegramUnauthorized(TelegramAPIError):
    """401 or 404: the bot token is wrong or revoked; nothing will get through."""


class TelegramForbidden(TelegramAPIError):
    """403: the bot was kicked or blocked, or the chat is gone."""


class TelegramServerError(TelegramAPIError):
    """5xx from Telegram or a proxy in front of it."""

    retryable = True


class TelegramUnexpectedResponse(TelegramAPIError):
    """Any other status, or a 2xx without a readable result."""

    def __init__(self, method: str, status: int, description: str) -> None:
        super().__init__(method, status, description)
        self.retryable = not 400 <= status < 500 or status == 408


def _telegram_id(value: object, *, signed: bool) -> int | None:
    """``value`` if it can be an id: an int (not a bool), not 0, within 2**53 (negative only if ``signed``)."""
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    low = -MAX_TELEGRAM_ID if signed else 1
    return value if low <= value <= MAX_TELEGRAM_ID and value != 0 else None


def retry_after_of(value: object, *, limit: float) -> tuple[float, float] | None:
    """``(wait, asked)``: the seconds a ``parameters.retry_after`` asks for, at most ``limit``, and the
    wait asked (``inf`` past a float); None if it is no wait (not a number, a bool, negative, NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    asked = float(value) if value <= 1e308 else math.inf  # a 400-digit int is no float
    return min(asked, limit), asked


def _describe(status: int, body: dict[str, object] | None, fallback: str) -> str:
    text = body.get("description") if body is not None else None
    if isinstance(text, str) and (line := " ".join(text.split())):  # one line: no forged log lines
        return line[:_DESCRIPTION_CAP]
    return fallback


def classify_response(
    method: str, status: int, body: object, *, max_retry_after: float = DEFAULT_MAX_RETRY_AFTER
) -> int | TelegramError:
    """The ``message_id`` of a successful call, or the error an answer stands for.

    ``body`` is the decoded JSON (anything else, e.g. ``None`` for an HTML page,
    counts as malformed). Decides on ``parameters`` and the HTTP status, never on
    the description text; a ``retry_after`` is clamped to ``max_retry_after``.
    """
    data = body if isinstance(body, dict) else None
    success = 200 <= status < 300
    if success and data is not None and data.get("ok") is True:
        result = data.get("result")
        message_id = _telegram_id(result.get("message_id"), signed=False) if isinstance(result, dict) else None
        if message_id is not None:
            return message_id

    params = data.get("parameters") if data is not None else None
    if isinstance(params, dict):
        if (new_chat_id := _telegram_id(params.get("migrate_to_chat_id"), signed=True)) is not None:
            text = _describe(status, data, "group chat was upgraded to a supergroup")
            return TelegramChatMigrated(method, status, text, new_chat_id=new_chat_id)
        wait = retry_after_of(params.get("retry_after"), limit=max_retry_after)
        if wait is not None:
            text = _describe(status, data, "too many requests")
            return TelegramRetryAfter(method, status, text, retry_after=wait[0], asked=wait[1])

    if data is None:
        fallback = "response is not a JSON object"
    elif success:
        fallback = "response has no result.message_id"
    else:
        fallback = "no description"
    text = _describe(status, data, fallback)
    if success:
        return TelegramUnexpectedResponse(method, status, text)
    if status == 400:
        return TelegramBadRequest(method, status, text)
    if status in (401, 404):
        return TelegramUnauthorized(method, status, text)
    if status == 403:
        return TelegramForbidden(method, status, text)
    if status == 429:
        return TelegramRetryAfter(method, status, text, retry_after=min(DEFAULT_RETRY_AFTER, max_retry_after))
    if 500 <= status < 600:
        return TelegramServerError(method, status, text)
    return TelegramUnexpectedResponse(method, status, text)
