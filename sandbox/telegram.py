"""A fake Telegram Bot API server on aiohttp, speaking the real wire format.

``POST /bot{token}/sendMessage`` (JSON, form or query parameters) answers like
Telegram and records every request; ``script(chat_id, *replies)`` queues canned
failures (429, migration, 400/401/403/404, 5xx with an HTML page, slow answers, and hostile
answers: a ``retry_after`` of a billion seconds, a raw JSON text such as ``Infinity``).
Optional checks: the expected token (401, or 404 for a malformed one), Telegram's
HTML subset and the 4096-character limit (400), and the rate limits (429).

Three ways to run it (the same API as :mod:`sandbox.gemini`)::

    async with SandboxTelegram() as fake: ...  # in the test's event loop: fake.base_url, .script(), .messages
    with run_in_thread() as fake: ...          # from sync code: the same names, run on the server's thread
    python -m sandbox.telegram --port 8081     # prints what the bot sends

No access log is written: request paths carry the token.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import math
import re
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from sandbox._thread import ServerThread

__all__ = ["ReceivedMessage", "Reply", "SandboxTelegram", "TelegramThread", "html_problem", "run_in_thread"]

_TOKEN_SHAPE = re.compile(r"\d+:[\w-]+")
_MARKUP = re.compile(r"<[^<>]*>|&(?:#\d+|#x[0-9a-fA-F]+|[a-zA-Z]+);|[<&]")
_TAG = re.compile(r"<(/?)([a-z][a-z-]*)(?:\s[^<>]*)?>")
_TAGS = frozenset(
    {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a", "tg-emoji"}
    | {"code", "pre", "blockquote"}
)
_ENTITIES = frozenset({"&lt;", "&gt;", "&amp;", "&quot;"})
_HTML_PAGE = (
    "<html>\r\n<head><title>{0}</title></head>\r\n"
    "<body>\r\n<center><h1>{0}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


def html_problem(text: str) -> str | None:
    """Why Telegram would reject ``text`` in HTML parse mode, or None (strict on ``&`` and ``<``)."""
    stack: list[str] = []
    for m in _MARKUP.finditer(text):
        token = m.group()
        if token.startswith("&"):
            if token != "&" and (token in _ENTITIES or token.startswith("&#")):
                continue
            return f"can't parse entities: unescaped or unsupported entity at offset {m.start()}"
        tag = _TAG.fullmatch(token)
        if tag is None or tag.group(2) not in _TAGS:
            return f"can't parse entities: Unsupported start tag at offset {m.start()}"
        closing, name = tag.group(1), tag.group(2)
        if not closing:
            stack.append(name)
        elif not stack or stack.pop() != name:
            return f'can\'t parse entities: Unmatched end tag "{name}" at offset {m.start()}'
    if stack:
        return f"can't parse entities: Can't find end tag corresponding to start tag \"{stack[-1]}\""
    return None


def visible_text(text: str, parse_mode: str | None) -> str:
    """The text as a chat shows it (tags removed, entities decoded in HTML mode)."""
    if (parse_mode or "").upper() != "HTML":
        return text
    return html.unescape(re.sub(r"<[^<>]*>", "", text))


@dataclass(frozen=True, slots=True)
class Reply:
    """A canned answer: ``body=None`` with status 200 means "deliver normally" (after ``delay``).

    A ``str`` body is sent as is, with ``content_type`` (an HTML page by default).
    """

    status: int = 200
    body: Mapping[str, Any] | str | None = None
    delay: float = 0.0
    content_type: str = "text/html"

    @classmethod
    def error(cls, status: int, description: str, **parameters: int) -> Reply:
        body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
        if parameters:
            body["parameters"] = parameters
        return cls(status, body)

    @classmethod
    def slow(cls, seconds: float) -> Reply:
        return cls(delay=seconds)

    @classmethod
    def retry_after(cls, seconds: int) -> Reply:
        return cls.error(429, f"Too Many Requests: retry after {seconds}", retry_after=seconds)

    @classmethod
    def raw_json(cls, status: int, text: str) -> Reply:
        """``text`` as the body, labelled JSON, unchecked: e.g. ``"retry_after": Infinity``, not JSON at all."""
        return cls(status, text, content_type="application/json")

    @classmethod
    def migrated(cls, new_chat_id: int) -> Reply:
        text = "Bad Request: group chat was upgraded to a supergroup chat"
        return cls.error(400, text, migrate_to_chat_id=new_chat_id)

    @classmethod
    def chat_not_found(cls) -> Reply:
        return cls.error(400, "Bad Request: chat not found")

    @classmethod
    def kicked(cls) -> Reply:
        return cls.error(403, "Forbidden: bot was kicked from the group chat")

    @classmethod
    def not_found(cls) -> Reply:
        return cls.error(404, "Not Found")

    @classmethod
    def unauthorized(cls) -> Reply:
        return cls.error(401, "Unauthorized")

    @classmethod
    def server_error(cls, status: int = 500, page: str | None = None) -> Reply:
        """A proxy-style HTML error page (not JSON)."""
        return cls(status, page if page is not None else _HTML_PAGE.format(f"{status} Server Error"))


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """One ``sendMessage`` request as the server saw it, and the status it answered."""

    chat_id: int | None
    text: str
    parse_mode: str | None
    status: int
    message_id: int | None
    received_at: float
    params: Mapping[str, Any] = field(repr=False)
    token: str = field(repr=False)

    @property
    def delivered(self) -> bool:
        return self.status == 200

    @property
    def bot_id(self) -> str:
        return self.token.split(":", 1)[0]


class SandboxTelegram:
    """The fake Bot API; ``base_url`` is valid between ``start()`` and ``stop()``.

    Not thread-safe: touch it from its own loop (``run_in_thread`` does so for other threads).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        expected_token: str | None = None,
        max_text_length: int | None = 4096,
        check_html: bool = True,
        enforce_limits: bool = False,
        global_per_second: int = 30,
        group_per_minute: int = 20,
        on_message: Callable[[ReceivedMessage], None] | None = None,
        latency: float = 0.0,
    ) -> None:
        self.host, self.port = host, port
        self.expected_token = expected_token
        self.max_text_length = max_text_length
        self.check_html = check_html
        self.enforce_limits = enforce_limits
        self.global_per_second, self.group_per_minute = global_per_second, group_per_minute
        self.on_message = on_message
        self.latency = latency  # seconds added to every answer, like a real network
        self.requests = 0
        self._messages: list[ReceivedMessage] = []
        self._scripts: defaultdict[int, deque[Reply]] = defaultdict(deque)
        self._next_message_id = 1
        self._recent: deque[float] = deque()
        self._recent_groups: defaultdict[int, deque[float]] = defaultdict(deque)
        self._runner: web.AppRunner | None = None
        self._outage: tuple[float, Reply] | None = None

    @property
    def base_url(self) -> str:
        if self._runner is None:
            raise RuntimeError("the sandbox is not running")
        return f"http://{self.host}:{self.port}"

    @property
    def messages(self) -> tuple[ReceivedMessage, ...]:
        """Every ``sendMessage`` received so far, failures included (a snapshot)."""
        return tuple(self._messages)

    def delivered(self) -> tuple[ReceivedMessage, ...]:
        return tuple(m for m in self.messages if m.delivered)

    def script(self, chat_id: int, *replies: Reply) -> None:
        """Answer the next requests to ``chat_id`` with ``replies``, in order."""
        self._scripts[chat_id].extend(replies)

    def outage(self, seconds: float, reply: Reply | None = None) -> None:
        """Answer every request with ``reply`` (a 502 page by default) for the next ``seconds``."""
        self._outage = (time.monotonic() + seconds, reply or Reply.server_error(502))

    async def wait_for(self, count: int, within: float = 10.0) -> tuple[ReceivedMessage, ...]:
        """Wait until ``count`` messages were delivered; return them."""
        deadline = time.monotonic() + within
        while len(found := self.delivered()) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(found)} of {count} messages delivered in {within} s")
            await asyncio.sleep(0.01)
        return found

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        token, method = request.match_info["token"], request.match_info["method"]
        if not _TOKEN_SHAPE.fullmatch(token):
            return _answer(Reply.not_found())
        if self.expected_token is not None and token != self.expected_token:
            return _answer(Reply.unauthorized())
        if method != "sendMessage":
            return _answer(Reply.not_found())
        params: dict[str, Any] = dict(request.query)
        try:
            if request.content_type == "application/json":
                params.update(await request.json())
            else:
                params.update(await request.post())
        except (ValueError, TypeError):
            return _answer(Reply.error(400, "Bad Request: can't parse JSON"))
        chat_id = _chat_id(params.get("chat_id"))
        text, parse_mode = params.get("text"), params.get("parse_mode")
        reply = self._decide(chat_id, text, parse_mode)
        if reply.delay or self.latency:
            await asyncio.sleep(reply.delay + self.latency)
        message_id = None
        if reply.status == 200 and reply.body is None:
            message_id, self._next_message_id = self._next_message_id, self._next_message_id + 1
        received = ReceivedMessage(
            chat_id=chat_id,
            text=text if isinstance(text, str) else "",
            parse_mode=parse_mode if isinstance(parse_mode, str) else None,
            status=reply.status,
            message_id=message_id,
            received_at=time.time(),
            params=params,
            token=token,
        )
        self._messages.append(received)
        if self.on_message is not None:
            self.on_message(received)
        if message_id is None or chat_id is None:
            return _answer(reply)
        kind = "private" if chat_id > 0 else "supergroup" if chat_id < -(10**12) else "group"
        result = {
            "message_id": message_id,
            "date": int(received.received_at),
            "chat": {"id": chat_id, "type": kind},
            "text": visible_text(received.text, received.parse_mode),
        }
        return web.json_response({"ok": True, "result": result})

    def _decide(self, chat_id: int | None, text: object, parse_mode: object) -> Reply:
        """The scripted reply if any, else the first check that fails, else a normal delivery."""
        if self._outage is not None and time.monotonic() < self._outage[0]:
            return self._outage[1]
        if chat_id is None:
            return Reply.error(400, "Bad Request: chat not found")
        if queue := self._scripts.get(chat_id):
            return queue.popleft()
        if not isinstance(text, str) or not text.strip():
            return Reply.error(400, "Bad Request: message text is empty")
        if parse_mode is not None and str(parse_mode).upper() not in ("HTML", "MARKDOWN", "MARKDOWNV2"):
            return Reply.error(400, "Bad Request: unsupported parse_mode")
        mode = parse_mode if isinstance(parse_mode, str) else None
        if self.check_html and (mode or "").upper() == "HTML" and (problem := html_problem(text)):
            return Reply.error(400, f"Bad Request: {problem}")
        if self.max_text_length is not None:
            shown = visible_text(text, mode)
            if len(shown.encode("utf-16-le")) // 2 > self.max_text_length:
                return Reply.error(400, "Bad Request: message is too long")
        if self.enforce_limits and (wait := self._flood_wait(chat_id, time.monotonic())):
            return Reply.retry_after(wait)
        return Reply()

    def _flood_wait(self, chat_id: int, now: float) -> int:
        """Whole seconds to wait under the rate limits (0: accepted and counted)."""
        windows = [(self._recent, self.global_per_second, 1.0)]
        if chat_id < 0:
            windows.append((self._recent_groups[chat_id], self.group_per_minute, 60.0))
        for recent, limit, span in windows:
            while recent and recent[0] <= now - span:
                recent.popleft()
            if len(recent) >= limit:
                return max(1, math.ceil(recent[0] + span - now))
        for recent, _, _ in windows:
            recent.append(now)
        return 0


def _chat_id(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    return None


def _answer(reply: Reply) -> web.Response:
    if isinstance(reply.body, str):
        return web.Response(status=reply.status, text=reply.body, content_type=reply.content_type)
    return web.json_response(dict(reply.body or {}), status=reply.status)


TelegramThread = ServerThread[SandboxTelegram]


def run_in_thread(**options: Any) -> TelegramThread:
    """Start ``SandboxTelegram(**options)`` in a daemon thread; ``stop()`` it (or use ``with``) when done."""
    return ServerThread(SandboxTelegram(**options), name="sandbox-telegram").start()


def _print_message(raw: bool) -> Callable[[ReceivedMessage], None]:
    def show(m: ReceivedMessage) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime(m.received_at))
        outcome = f"message {m.message_id}" if m.delivered else f"answered {m.status}"
        text = m.text if raw else visible_text(m.text, m.parse_mode)
        print(f"[{stamp}] bot {m.bot_id} -> chat {m.chat_id} ({m.parse_mode or 'plain'}, {outcome})")
        print("    " + text.replace("\n", "\n    ") + "\n", flush=True)

    return show


async def _serve(server: SandboxTelegram) -> None:
    async with server:
        print(f"sandbox Telegram listening on {server.base_url}", flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake Telegram Bot API that prints what bots send.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", help="accept only this bot token (others get 401)")
    parser.add_argument("--enforce-limits", action="store_true", help="answer 429 above Telegram's rates")
    parser.add_argument("--raw", action="store_true", help="print HTML as sent, not as shown")
    args = parser.parse_args(argv)
    server = SandboxTelegram(
        host=args.host,
        port=args.port,
        expected_token=args.token,
        enforce_limits=args.enforce_limits,
        on_message=_print_message(args.raw),
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(server))


if __name__ == "__main__":
    main()
