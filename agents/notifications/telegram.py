"""Telegram Bot API client: ``sendMessage`` with typed errors and no token leaks.

Exception tree (``retryable`` on the right)::

    TelegramError                     method, status, description, retryable, ambiguous
    ├── TelegramTransportError        no answer: connect failed, timed out, dropped   yes
    │                                 (ambiguous: the request may have been delivered)
    └── TelegramAPIError              an answer that is not a clean success
        ├── TelegramRetryAfter        parameters.retry_after, or a bare 429           yes
        ├── TelegramChatMigrated      parameters.migrate_to_chat_id: resend to new id  no
        ├── TelegramBadRequest        400 (chat not found, bad HTML, too long)        no
        ├── TelegramUnauthorized      401, 404: the token is wrong                    no
        ├── TelegramForbidden         403 (bot kicked, blocked, chat deleted)         no
        ├── TelegramServerError       5xx                                             yes
        └── TelegramUnexpectedResponse any other status; a 2xx we cannot read        not for 4xx

A 2xx whose body is not ``{"ok": true, "result": {"message_id": int}}`` is a
``TelegramUnexpectedResponse`` that is retryable and ``ambiguous`` (the message
may have been sent), like a read timeout: the caller decides whether a possible
duplicate beats a possible loss.

The token is part of every request URL. It never reaches an exception, a
``repr`` or a log line: errors carry the method name only, transport failures
are re-raised outside the ``except`` block (no ``__cause__`` nor
``__context__`` pointing at aiohttp's exception, whose text holds the URL), and
response bodies are scrubbed of the token before anything reads them.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from types import TracebackType
from typing import Final, Protocol, Self

import aiohttp

from streams.redaction import bot_id_of

__all__ = [
    "DEFAULT_RETRY_AFTER",
    "SEND_MESSAGE",
    "SendThrottle",
    "TelegramAPIError",
    "TelegramBadRequest",
    "TelegramChatMigrated",
    "TelegramClient",
    "TelegramError",
    "TelegramForbidden",
    "TelegramRetryAfter",
    "TelegramServerError",
    "TelegramTransportError",
    "TelegramUnauthorized",
    "TelegramUnexpectedResponse",
    "classify_response",
]

logger = logging.getLogger(__name__)

SEND_MESSAGE: Final = "sendMessage"
# Seconds to wait on a 429 that names no ``parameters.retry_after``.
DEFAULT_RETRY_AFTER: Final = 5.0
_REDACTED: Final = "<token>"
_DESCRIPTION_CAP: Final = 300


class TelegramError(Exception):
    """Root of every Telegram failure; never carries the token or a URL."""

    retryable: bool = False
    ambiguous: bool = False

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

    def __init__(self, method: str, description: str, *, ambiguous: bool) -> None:
        super().__init__(method, None, description)
        self.ambiguous = ambiguous


class TelegramAPIError(TelegramError):
    """The server answered, and the answer is not a clean success."""


class TelegramRetryAfter(TelegramAPIError):
    """Flood control: wait ``retry_after`` seconds, then send the same message again."""

    retryable = True

    def __init__(self, method: str, status: int, description: str, *, retry_after: float) -> None:
        super().__init__(method, status, description)
        self.retry_after = retry_after


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
        self.ambiguous = 200 <= status < 300


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _describe(status: int, body: dict[str, object] | None, fallback: str) -> str:
    text = body.get("description") if body is not None else None
    if isinstance(text, str) and text:
        return text[:_DESCRIPTION_CAP]
    return fallback


def classify_response(method: str, status: int, body: object) -> int | TelegramError:
    """The ``message_id`` of a successful call, or the error an answer stands for.

    ``body`` is the decoded JSON (anything else, e.g. ``None`` for an HTML page,
    counts as malformed). Decides on ``parameters`` and the HTTP status, never on
    the description text.
    """
    data = body if isinstance(body, dict) else None
    success = 200 <= status < 300
    if success and data is not None and data.get("ok") is True:
        result = data.get("result")
        if isinstance(result, dict) and _is_int(result.get("message_id")):
            return int(result["message_id"])

    params = data.get("parameters") if data is not None else None
    if isinstance(params, dict):
        new_chat_id = params.get("migrate_to_chat_id")
        if _is_int(new_chat_id):
            text = _describe(status, data, "group chat was upgraded to a supergroup")
            return TelegramChatMigrated(method, status, text, new_chat_id=int(new_chat_id))
        retry_after = params.get("retry_after")
        if isinstance(retry_after, int | float) and not isinstance(retry_after, bool) and retry_after >= 0:
            text = _describe(status, data, "too many requests")
            return TelegramRetryAfter(method, status, text, retry_after=float(retry_after))

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
        return TelegramRetryAfter(method, status, text, retry_after=DEFAULT_RETRY_AFTER)
    if 500 <= status < 600:
        return TelegramServerError(method, status, text)
    return TelegramUnexpectedResponse(method, status, text)


class SendThrottle(Protocol):
    """What the client awaits before each request (``shared_budget.SharedBudget``, ``throttle.Throttle``)."""

    async def acquire(self, chat_id: int, max_wait: float | None = None) -> float: ...

    async def pause(self, seconds: float) -> None:
        """Hold every send of the bot for ``seconds`` (Telegram answered 429)."""


def _transport_error(method: str, exc: BaseException, timeout: float) -> TelegramTransportError:
    """A redacted stand-in for an aiohttp/asyncio failure (their text may hold the URL)."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return TelegramTransportError(method, f"connect timed out after {timeout:g} s", ambiguous=False)
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return TelegramTransportError(method, f"cannot connect ({type(exc).__name__})", ambiguous=False)
    if isinstance(exc, TimeoutError):
        text = f"no response within {timeout:g} s; the message may have been delivered"
        return TelegramTransportError(method, text, ambiguous=True)
    text = f"connection failed mid-request ({type(exc).__name__}); the message may have been delivered"
    return TelegramTransportError(method, text, ambiguous=True)


class TelegramClient:
    """Sends HTML messages through one bot; ``async with`` closes what it opened.

    After a 401/404 the client stops: every later call raises
    ``TelegramUnauthorized`` at once, without HTTP, and one CRITICAL line says so.
    """

    def __init__(
        self,
        *,
        token: str,
        base_url: str,
        timeout: float,
        session: aiohttp.ClientSession | None = None,
        throttle: SendThrottle | None = None,
    ) -> None:
        if not token:
            raise ValueError("a bot token is required")
        self.__token = token
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._session = session
        self._owns_session = session is None
        self._throttle = throttle
        self._rejected_status: int | None = None
        #: Answers by HTTP status ("200", "429", ...) or "transport", for metrics.
        self.responses: Counter[str] = Counter()

    @property
    def bot_id(self) -> str:
        """The public part of the token, safe to log."""
        return bot_id_of(self.__token)

    @property
    def unauthorized(self) -> bool:
        """True once Telegram has rejected the token."""
        return self._rejected_status is not None

    def __repr__(self) -> str:
        state = ", unauthorized" if self.unauthorized else ""
        return f"<TelegramClient bot_id={self.bot_id}{state}>"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session if this client created it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def send_message(self, chat_id: int, text: str, *, max_wait: float | None = None) -> int:
        """Send ``text`` (HTML) to ``chat_id``; return Telegram's ``message_id``.

        Raises a ``TelegramError``, or ``ThrottleWait`` from the throttle when the
        next slot for this chat is more than ``max_wait`` seconds away. A 429 pauses
        the throttle (the whole bot) for its ``retry_after`` before it is raised.
        """
        self._refuse_if_rejected()
        if self._throttle is not None:
            await self._throttle.acquire(chat_id, max_wait)
            self._refuse_if_rejected()  # another send may have found out while we waited
        payload = {
            "chat_id": chat_id,
            "text": text,
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": True},
        }
        try:
            status, body = await self._post(SEND_MESSAGE, payload)
        except TelegramTransportError:
            self.responses["transport"] += 1
            raise
        self.responses[str(status)] += 1
        outcome = classify_response(SEND_MESSAGE, status, body)
        if isinstance(outcome, int):
            logger.debug("telegram: sent message %s to chat %s (bot id %s)", outcome, chat_id, self.bot_id)
            return outcome
        if isinstance(outcome, TelegramRetryAfter) and self._throttle is not None:
            await self._throttle.pause(outcome.retry_after)
        if isinstance(outcome, TelegramUnauthorized) and self._rejected_status is None:
            self._rejected_status = status
            logger.critical(
                "telegram bot token rejected (HTTP %s): sending stopped until restart (bot id %s)",
                status,
                self.bot_id,
            )
        raise outcome

    def _refuse_if_rejected(self) -> None:
        if self._rejected_status is not None:
            raise TelegramUnauthorized(SEND_MESSAGE, self._rejected_status, "bot token was rejected earlier")

    async def _post(self, method: str, payload: dict[str, object]) -> tuple[int, object]:
        """POST ``payload``; the status and the decoded, token-free body (None if not JSON)."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        url = f"{self._base_url}/bot{self.__token}/{method}"
        try:
            async with self._session.post(
                url, json=payload, timeout=aiohttp.ClientTimeout(total=self._timeout)
            ) as response:
                status, raw = response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            failure = _transport_error(method, exc, self._timeout)
        else:
            text = raw.decode("utf-8", "replace").replace(self.__token, _REDACTED)
            try:
                return status, json.loads(text)
            except ValueError:
                return status, None
        # Raised outside the except block: no __context__ pointing at aiohttp's exception.
        raise failure
