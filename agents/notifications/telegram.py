"""Telegram Bot API client: ``sendMessage`` with typed errors (``telegram_errors``) and no token leaks.

The token is part of every request URL. It never reaches an exception, a
``repr`` or a log line: errors carry the method name only, transport failures
are re-raised outside the ``except`` block (no ``__cause__`` nor
``__context__`` pointing at aiohttp's exception, whose text holds the URL), and
response bodies are scrubbed of the token before anything reads them.

The answer is outside input: at most ``MAX_BODY`` bytes of it are read, and a ``retry_after``
beyond ``max_retry_after`` (``TELEGRAM_MAX_RETRY_AFTER``; ``Infinity`` included, which Python's
decoder takes) is clamped to it, with one WARNING line.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from types import TracebackType
from typing import Final, Protocol, Self

import aiohttp

from agents.notifications.telegram_errors import (
    DEFAULT_MAX_RETRY_AFTER,
    TelegramRetryAfter,
    TelegramTransportError,
    TelegramUnauthorized,
    classify_response,
)
from streams.redaction import bot_id_of

__all__ = ["MAX_BODY", "SEND_MESSAGE", "SendThrottle", "TelegramClient"]

logger = logging.getLogger(__name__)

SEND_MESSAGE: Final = "sendMessage"
_REDACTED: Final = "<token>"
#: Bytes of an answer read at most (a sendMessage answer is a few kB); a longer one counts as unreadable.
MAX_BODY: Final = 1 << 20


class SendThrottle(Protocol):
    """What the client awaits before each request (``shared_budget.SharedBudget``, ``throttle.Throttle``)."""

    async def acquire(self, chat_id: int, max_wait: float | None = None) -> float: ...

    async def pause(self, seconds: float) -> None:
        """Hold every send of the bot for ``seconds`` (Telegram answered 429)."""


def _transport_error(method: str, exc: BaseException, timeout: float) -> TelegramTransportError:
    """A redacted stand-in for an aiohttp/asyncio failure (their text may hold the URL)."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return TelegramTransportError(method, f"connect timed out after {timeout:g} s")
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return TelegramTransportError(method, f"cannot connect ({type(exc).__name__})")
    if isinstance(exc, TimeoutError):
        text = f"no response within {timeout:g} s; the message may have been delivered"
        return TelegramTransportError(method, text)
    text = f"connection failed mid-request ({type(exc).__name__}); the message may have been delivered"
    return TelegramTransportError(method, text)


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
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
    ) -> None:
        if not token:
            raise ValueError("a bot token is required")
        self.__token = token
        self._bot_id = bot_id_of(token)  # computed once: a DEBUG line per send passes it even when not written
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._session = session
        self._owns_session = session is None
        self._throttle = throttle
        self._max_retry_after = max_retry_after
        self._rejected_status: int | None = None
        #: Answers by HTTP status ("200", "429", ...) or "transport", for metrics.
        self.responses: Counter[str] = Counter()

    @property
    def bot_id(self) -> str:
        """The public part of the token, safe to log."""
        return self._bot_id

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
        outcome = classify_response(SEND_MESSAGE, status, body, max_retry_after=self._max_retry_after)
        if isinstance(outcome, int):
            logger.debug("telegram: sent message %s to chat %s (bot id %s)", outcome, chat_id, self._bot_id)
            return outcome
        if isinstance(outcome, TelegramRetryAfter):
            if outcome.clamped:
                logger.warning(
                    "telegram: the Bot API asked to wait %.0f s (retry_after); waiting %.0f s "
                    "(clamped to TELEGRAM_MAX_RETRY_AFTER, bot id %s)",
                    outcome.asked,
                    outcome.retry_after,
                    self.bot_id,
                )
            if self._throttle is not None:
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
                status, raw = response.status, await _read_at_most(response, MAX_BODY)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            failure = _transport_error(method, exc, self._timeout)
        else:
            if raw is None:
                return status, None
            text = raw.decode("utf-8", "replace").replace(self.__token, _REDACTED)
            try:
                return status, json.loads(text)
            except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
                return status, None
        # Raised outside the except block: no __context__ pointing at aiohttp's exception.
        raise failure


async def _read_at_most(response: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The body if it is at most ``limit`` bytes; None (unread beyond it) if longer."""
    chunks, size = [], 0
    while chunk := await response.content.read(limit + 1 - size):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return None
    return b"".join(chunks)
