"""A fake Gemini REST API (``generateContent``) on aiohttp, for tests, benchmarks and local runs.

Answers like the real API: ``POST /v1beta/models/{model}:generateContent`` with the key in the
``x-goog-api-key`` header (or ``?key=``). By default it returns a plausible recommendation built
from the prompt's data block; every 200 carries ``usageMetadata`` (about 4 characters a token).
:meth:`SandboxGemini.script` queues other replies per key or for all (:func:`answer`, :func:`recommendation`,
:func:`default`, :func:`rate_limited`, :func:`invalid_key`, :func:`unavailable`, :func:`error`).
Every request is recorded with the key's fingerprint only.

Three ways to run it (the same API as :mod:`sandbox.telegram`)::

    async with SandboxGemini() as fake: ...    # in the test's event loop: fake.base_url, .script(), .requests
    with run_in_thread() as fake: ...          # from sync code: the same names, run on the server's thread
    python -m sandbox.gemini --port 8082       # by hand; prints each request
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from agents.recommendations.advice import DATA_CLOSE, DATA_OPEN
from sandbox._thread import ServerThread
from streams.redaction import key_fingerprint

__all__ = [
    "GeminiThread",
    "RecordedRequest",
    "Reply",
    "SandboxGemini",
    "answer",
    "default",
    "default_text",
    "error",
    "invalid_key",
    "rate_limited",
    "recommendation",
    "run_in_thread",
    "unavailable",
    "usage_metadata",
]

_TYPE = "type.googleapis.com/google.rpc."


@dataclass(frozen=True)
class Reply:
    """One scripted HTTP answer; ``delay`` is extra latency in seconds."""

    status: int
    body: dict[str, Any]
    delay: float = 0.0


def answer(text: str, *, finish_reason: str = "STOP", delay: float = 0.0) -> Reply:
    """A 200 whose model output is ``text`` verbatim (valid JSON or not)."""
    content = {"role": "model", "parts": [{"text": text}]}
    candidate = {"content": content, "finishReason": finish_reason, "index": 0}
    return Reply(200, {"candidates": [candidate]}, delay)


def recommendation(summary: str, *tips: str, delay: float = 0.0) -> Reply:
    """A 200 whose model output is the recommendation JSON of ``summary`` and ``tips``, verbatim (hostile or not)."""
    return answer(json.dumps({"summary": summary, "tips": list(tips)}, ensure_ascii=False), delay=delay)


def default(delay: float = 0.0) -> Reply:
    """The default answer (a plausible recommendation built from the prompt), optionally late."""
    return Reply(200, {}, delay)


def error(status: int, status_text: str, message: str, details: Iterable[dict[str, Any]] = ()) -> Reply:
    """Any Google API error body: ``{"error": {code, message, status, details}}``."""
    body: dict[str, Any] = {"code": status, "message": message, "status": status_text}
    if details := list(details):
        body["details"] = details
    return Reply(status, {"error": body})


def rate_limited(retry_delay: str = "2s", *, per_day: bool = False) -> Reply:
    """A 429 with ``QuotaFailure`` (per-minute or per-day quota id) and ``RetryInfo``."""
    period = "Day" if per_day else "Minute"
    violation = {
        "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
        "quotaId": f"GenerateRequestsPer{period}PerProjectPerModel-FreeTier",
        "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash-lite"},
        "quotaValue": "1000" if per_day else "15",
    }
    details = [
        {"@type": _TYPE + "QuotaFailure", "violations": [violation]},
        {"@type": _TYPE + "RetryInfo", "retryDelay": retry_delay},
    ]
    message = "You exceeded your current quota, please check your plan and billing details."
    return error(429, "RESOURCE_EXHAUSTED", message, details)


def invalid_key() -> Reply:
    """The real answer to a wrong key: 400 ``INVALID_ARGUMENT`` with reason ``API_KEY_INVALID``."""
    info = {"@type": _TYPE + "ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}
    return error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", [info])


def unavailable(message: str = "The model is overloaded. Please try again later.") -> Reply:
    return error(503, "UNAVAILABLE", message)


def usage_metadata(prompt: str, text: str) -> dict[str, int]:
    """Gemini's ``usageMetadata`` for an answer, estimated as about 4 characters a token."""
    prompt_tokens, answer_tokens = max(1, round(len(prompt) / 4)), max(1, round(len(text) / 4))
    return {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": answer_tokens,
        "totalTokenCount": prompt_tokens + answer_tokens,
    }


def _seconds(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") + "s"


def default_text(prompt: str) -> str:
    """A plausible recommendation JSON for ``prompt``, using its data block when there is one."""
    data: dict[str, Any] = {}
    start, end = prompt.rfind(DATA_OPEN), prompt.rfind(DATA_CLOSE)  # the instructions name them first
    if 0 <= start < end:
        try:
            data = json.loads(prompt[start + len(DATA_OPEN) : end])
        except ValueError:
            data = {}
    name = str(data.get("name") or "there")
    combos = data.get("combos")
    combo = next(iter(combos), "the daily combo") if isinstance(combos, dict) else "the daily combo"
    count = data.get("orders", "several")
    return json.dumps(
        {
            "summary": f"Hi {name}! You ordered {count} lunches this month, most often {combo}.",
            "tips": ["Try a combo you have not had this week.", "Order before the deadline to be safe."],
        },
        ensure_ascii=False,
    )


@dataclass(frozen=True)
class RecordedRequest:
    key: str  # fingerprint
    model: str
    prompt: str
    generation_config: dict[str, Any]
    status: int
    at: float = field(default_factory=time.time)


class SandboxGemini:
    """The fake server; ``base_url`` is valid between ``start()`` and ``stop()``.

    Not thread-safe: touch it from its own loop (``run_in_thread`` does so for other threads).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        rpm_limit: int | None = None,
        rpm_window: float = 60.0,
        valid_keys: Iterable[str] | None = None,
        verbose: bool = False,
    ) -> None:
        self.host, self.port = host, port
        self.latency = latency
        self.rpm_limit, self.rpm_window = rpm_limit, rpm_window
        self.valid = None if valid_keys is None else {key_fingerprint(k) for k in valid_keys}
        self.verbose = verbose
        self.requests: list[RecordedRequest] = []
        self._queues: dict[str | None, deque[Reply]] = {}
        self._recent: dict[str, deque[float]] = {}
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def script(self, *replies: Reply, key: str | None = None) -> None:
        """Queue replies for one key (raw key; stored by fingerprint) or, with ``key=None``, for any key."""
        self._queues.setdefault(None if key is None else key_fingerprint(key), deque()).extend(replies)

    def reset(self) -> None:
        self.requests.clear()
        self._queues.clear()
        self._recent.clear()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1beta/models/{target}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SandboxGemini:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _choose(self, fp: str | None) -> Reply:
        if fp is None:
            return error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers.")
        if self.valid is not None and fp not in self.valid:
            return invalid_key()
        for queue in (self._queues.get(fp), self._queues.get(None)):
            if queue:
                return queue.popleft()
        if self.rpm_limit is not None:
            now = time.monotonic()
            recent = self._recent.setdefault(fp, deque())
            while recent and recent[0] <= now - self.rpm_window:
                recent.popleft()
            if len(recent) >= self.rpm_limit:
                return rate_limited(_seconds(recent[0] + self.rpm_window - now))
            recent.append(now)
        return default()

    async def _handle(self, request: web.Request) -> web.Response:
        model, _, method = request.match_info["target"].rpartition(":")
        if method != "generateContent" or not model:
            return web.json_response(error(404, "NOT_FOUND", "Method not found.").body, status=404)
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        try:
            body = await request.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        parts = [p for c in body.get("contents") or [] if isinstance(c, dict) for p in c.get("parts") or []]
        prompt = "".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))
        fp = key_fingerprint(key) if key else None
        reply = self._choose(fp)
        if reply.status == 200 and not reply.body:
            reply = answer(default_text(prompt), delay=reply.delay)
        config = body.get("generationConfig")
        self.requests.append(RecordedRequest(fp or "none", model, prompt, config or {}, reply.status))
        if self.verbose:
            print(f"{reply.status} {fp or 'no-key'} {model} {prompt[-60:]!r}", flush=True)
        if delay := self.latency + reply.delay:
            await asyncio.sleep(delay)
        payload = dict(reply.body)
        if reply.status == 200:
            payload["usageMetadata"] = usage_metadata(prompt, payload["candidates"][0]["content"]["parts"][0]["text"])
            payload["modelVersion"] = model
            payload["responseId"] = f"sandbox-{len(self.requests)}"
        return web.json_response(payload, status=reply.status)


GeminiThread = ServerThread[SandboxGemini]


def run_in_thread(**options: Any) -> GeminiThread:
    """Start ``SandboxGemini(**options)`` in a daemon thread; ``stop()`` it (or use ``with``) when done."""
    return ServerThread(SandboxGemini(**options), name="sandbox-gemini").start()


async def _serve(args: argparse.Namespace) -> None:
    fake = SandboxGemini(
        host=args.host,
        port=args.port,
        latency=args.latency,
        rpm_limit=args.rpm,
        valid_keys=args.valid_key or None,
        verbose=True,
    )
    async with fake:
        print(f"fake Gemini API at {fake.base_url} (set GEMINI_API_BASE_URL to it)", flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument("--rpm", type=int, default=None, help="requests per minute allowed per key")
    parser.add_argument("--valid-key", action="append", help="accept only these keys (repeatable)")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
