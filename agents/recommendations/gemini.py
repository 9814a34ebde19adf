"""Gemini client for recommendations: one google-genai client per API key, a key pool, error mapping.

Its exceptions are in :mod:`agents.recommendations.gemini_errors` (API keys never appear in them,
nor in logs or reprs: SDK errors are never chained, only sanitised text is kept).

Each answer's token counts (``usage_metadata``) come back with the recommendation (:class:`Answer`),
or with the ``RecommendationFailed`` of an answer we could not use (its tokens were billed all the
same), and are summed per key for the metrics.

HTTP answers map to key-pool reports: 429 per-day quota -> park the key until Pacific midnight;
other 429 -> cool down for ``RetryInfo.retryDelay``; 400 ``API_KEY_INVALID``, 401, 403 -> disable;
408, 5xx, transport errors -> short backoff. Each of those retries on another key. The SDK's own
retries are off: they ignore ``retryDelay`` and would hammer a key the pool knows to be cooling.
Given a Redis client, what one worker learns is shared with all, and keys can be paced
(:mod:`agents.recommendations.key_broker`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import aiohttp
from google import genai
from google.genai import errors, types
from redis.asyncio import Redis

from agents.recommendations.advice import InvalidRecommendation, Recommendation, validate_recommendation
from agents.recommendations.gemini_errors import (
    AllKeysExhausted,
    GeminiError,
    GeminiUnavailable,
    RecommendationFailed,
    error_detail,
    error_details,
    is_daily_quota,
    parse_duration,
)
from agents.recommendations.key_broker import SHARED_ERRORS, KeyBroker
from agents.recommendations.keypool import KeyLease, KeyPool, KeyState
from agents.recommendations.shared_keys import DEFAULT_PREFIX, SharedKeyStates
from agents.recommendations.usage import Answer, TokenUsage

__all__ = ["GeminiRecommender"]

log = logging.getLogger(__name__)

_BUSY_POLL = 0.05
_TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError, OSError, errors.UnknownApiResponseError)


class GeminiRecommender:
    """Asks Gemini for one user's recommendation, spreading requests over a pool of API keys.

    ``redis`` shares the keys' states with every worker (None: this process's own); ``key_rpm``
    paces each key through it, ``shared_prefix`` names its Redis keys, ``shared_retry_s`` spaces
    the tries of a failed Redis.
    """

    def __init__(
        self,
        *,
        api_keys: Iterable[str],
        base_url: str,
        model: str,
        redis: Redis | None,
        key_rpm: float = 0.0,
        shared_prefix: str = DEFAULT_PREFIX,
        shared_retry_s: float = 5.0,
        timeout_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        max_attempts: int = 4,
        max_wait_s: float = 60.0,
        temperature: float = 0.7,
        max_output_tokens: int = 1024,
        max_in_flight_per_key: int | None = None,
        server_backoff_base: float = 1.0,
        server_backoff_max: float = 60.0,
    ) -> None:
        keys = list(dict.fromkeys(k.strip() for k in api_keys if k.strip()))
        if not keys:
            raise ValueError("GEMINI_API_KEYS is empty")
        self._secrets = keys
        self._model = model
        self._clock = clock
        self._max_attempts = max(1, max_attempts)
        self._max_wait = max_wait_s
        pool = KeyPool(
            keys,
            now=clock,
            max_in_flight=max_in_flight_per_key,
            server_backoff_base=server_backoff_base,
            server_backoff_max=server_backoff_max,
        )
        self._shared = None if redis is None else SharedKeyStates(redis, prefix=shared_prefix, key_rpm=key_rpm)
        self._keys = KeyBroker(pool, self._shared, now=clock, wall=wall_clock, retry_after=shared_retry_s)
        self._wall = wall_clock
        self._tokens = {fp: TokenUsage() for fp in pool.fingerprints}
        self._clients = [
            genai.Client(
                api_key=k,
                vertexai=False,
                http_options=types.HttpOptions(
                    base_url=base_url,
                    api_version="v1beta",
                    timeout=int(timeout_s * 1000),
                    retry_options=types.HttpRetryOptions(attempts=1),  # no SDK retries: the pool decides
                ),
            )
            for k in keys
        ]
        self._config = types.GenerateContentConfig(
            response_mime_type="application/json",
            response_schema=Recommendation,
            temperature=temperature,
            max_output_tokens=max_output_tokens,
            # No tools are given: without this the SDK logs "AFC is enabled" at INFO on every call.
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        )

    def __repr__(self) -> str:
        return f"GeminiRecommender(model={self._model!r}, keys={self.pool.fingerprints})"

    @property
    def pool(self) -> KeyPool:
        return self._keys.pool

    @property
    def fallbacks(self) -> int:
        """Leases made from this process's own key states because Redis failed (a counter)."""
        return self._keys.fallbacks

    def key_stats(self) -> dict[str, dict[str, int | float | str]]:
        """Per-key counters, tokens and states (shared ones as last seen): fingerprint -> ok, state, ..."""
        stats = self.pool.snapshot()
        for fp, used in self._tokens.items():
            stats[fp] |= {"prompt_tokens": used.prompt, "output_tokens": used.output, "total_tokens": used.total}
        return stats

    async def describe(self) -> dict[str, Any]:
        """The pool for the operator console: each key's state for all workers (Redis) and ``until`` (UNIX
        seconds), with this worker's counters; this worker's own states while Redis does not answer."""
        stats, now = self.key_stats(), self._wall()
        states = {fp: (KeyState(s["state"]), float(s["ready_in"])) for fp, s in stats.items()}
        source = "this worker's own"
        if self._shared is not None:
            try:
                now, views = await self._shared.peek(self.pool.fingerprints)
            except SHARED_ERRORS as exc:
                source = f"this worker's own (Redis: {type(exc).__name__})"
            else:
                states = {fp: view.state() for fp, view in zip(self.pool.fingerprints, views, strict=True)}
                source = "shared by all workers (Redis)"
        keys = [
            {
                "fingerprint": fp,
                **stats[fp],
                "state": state.value,
                "until": None if state is KeyState.READY else now + wait,
            }
            for fp, (state, wait) in states.items()
        ]
        return {"source": source, "keys": keys}

    def _redact(self, text: object, limit: int = 300) -> str:
        clean = str(text)
        for key, fingerprint in zip(self._secrets, self.pool.fingerprints, strict=True):
            clean = clean.replace(key, fingerprint)
        return clean if len(clean) <= limit else clean[:limit] + "…"

    async def _acquire(self) -> KeyLease:
        """A key now, or after waiting for the soonest cooling one, at most ``max_wait_s``."""
        deadline = self._clock() + self._max_wait
        while (lease := await self._keys.acquire()) is None:
            wait = self.pool.next_ready_in()
            if wait is None:
                raise AllKeysExhausted("every Gemini API key is disabled")
            if self._clock() + wait > deadline:
                raise AllKeysExhausted(f"no Gemini API key usable for {wait:.0f} s")
            await asyncio.sleep(wait or _BUSY_POLL)  # 0.0: a key is ready but busy
        return lease

    async def recommend(self, prompt: str) -> Answer:
        """One validated recommendation for ``prompt`` and its tokens (see the module doc for errors)."""
        last = "no attempt"
        for attempt in range(1, self._max_attempts + 1):
            lease = await self._acquire()
            log.debug("Gemini request attempt %d on %s", attempt, lease.fingerprint)
            outcome = await self._attempt(lease, prompt)
            if isinstance(outcome, str):
                last = outcome
                continue
            if isinstance(outcome, GeminiError):
                raise outcome  # outside any except block: no SDK error chained as context
            return outcome
        raise GeminiUnavailable(f"gave up after {self._max_attempts} attempts; last: {last}")

    async def _attempt(self, lease: KeyLease, prompt: str) -> Answer | GeminiError | str:
        """One request; reports the lease. A str means: retry (it says why), a GeminiError: give up."""
        try:
            response = await self._clients[lease.index].aio.models.generate_content(
                model=self._model, contents=prompt, config=self._config
            )
        except errors.APIError as exc:
            return await self._on_api_error(lease, exc)
        except _TRANSPORT_ERRORS as exc:
            log.warning("Gemini transport error on %s: %s", lease.fingerprint, type(exc).__name__)
            await self._keys.report_server_error(lease)
            return f"{type(exc).__name__} on {lease.fingerprint}"
        except Exception as exc:
            self._keys.release(lease)
            return GeminiError(f"unexpected {type(exc).__name__}: {self._redact(exc)}", key=lease.fingerprint)
        except BaseException:  # cancelled
            self._keys.release(lease)
            raise
        self._keys.report_success(lease)
        return self._parse(response, lease.fingerprint)

    async def _on_api_error(self, lease: KeyLease, exc: errors.APIError) -> GeminiError | str:
        """Report the lease's outcome; a str (safe description) means retry on another key."""
        code = int(exc.code or 0)
        details = error_details(exc)
        reason = error_detail(details, "google.rpc.ErrorInfo").get("reason")
        what = f"HTTP {code} {exc.status or '-'} on {lease.fingerprint}"
        text = f"{what}: {self._redact(exc.message or '')}"
        if code == 429:
            if is_daily_quota(details):
                await self._keys.report_daily_quota(lease)
            else:
                delay = parse_duration(error_detail(details, "google.rpc.RetryInfo").get("retryDelay"))
                await self._keys.report_rate_limited(lease, delay)
            return what
        if code in (401, 403) or reason == "API_KEY_INVALID":
            await self._keys.report_invalid(lease)
            return what
        if code == 408 or code >= 500:
            log.warning("Gemini server error: %s", text)
            await self._keys.report_server_error(lease)
            return what
        self._keys.release(lease)
        log.warning("Gemini rejected the request: %s", text)
        if code == 404:
            return GeminiError(f"model {self._model!r} not found ({text})", key=lease.fingerprint, code=code)
        return RecommendationFailed(f"request rejected: {text}", key=lease.fingerprint, code=code)

    def _parse(self, response: types.GenerateContentResponse, fp: str) -> Answer | GeminiError:
        usage = TokenUsage.of(response.usage_metadata)
        if usage is not None:
            self._tokens[fp] += usage
        parsed = response.parsed
        if parsed is None:
            candidates = response.candidates or []
            finish = candidates[0].finish_reason if candidates else None
            return RecommendationFailed(f"no parsable answer (finish reason {finish})", key=fp, usage=usage)
        try:
            return Answer(validate_recommendation(parsed), usage)
        except InvalidRecommendation as exc:
            return RecommendationFailed(f"invalid answer: {exc}", key=fp, usage=usage)

    async def close(self) -> None:
        """Close every client's HTTP sessions."""
        for client in self._clients:
            await client.aio.aclose()
            client.close()
