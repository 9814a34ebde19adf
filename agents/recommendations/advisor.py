"""The per-user work of a batch: stats → prompt → Gemini → validation → Redis, a few users at a time.

Requests are handled ``RECOMMENDATION_CONCURRENCY`` at a time per worker, each in a
slot of its own (one slow Gemini call does not idle the others), one at a time per
user, and acknowledged only once handled. Every outcome is reported as
``BatchProgress`` for the counter, with the tokens of Gemini's answer when one came
(even an unusable one, or one whose caching failed: it was billed).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from zoneinfo import ZoneInfo

from faust.types import EventT

from agents.recommendations.advice import build_prompt
from agents.recommendations.gemini_errors import AllKeysExhausted, GeminiError
from agents.recommendations.outbox import BatchOutbox
from agents.recommendations.ports import Cache, Recommender, UserSource
from agents.recommendations.usage import Answer, TokenUsage
from models.records import BatchProgress, ProgressKind, RecommendationRequest, parse_recommendation_request
from streams.concurrency import KeyedPool
from streams.dead_letters import UNWRITTEN, DeadLetterSink, decode_or_dead_letter, unless_unwritten

__all__ = ["NoGeminiKeys", "UserAdvisor"]

log = logging.getLogger(__name__)


class NoGeminiKeys:
    """The recommender when ``GEMINI_API_KEYS`` is not set: every batch stops at its first user."""

    async def recommend(self, prompt: str) -> Answer:
        raise AllKeysExhausted("GEMINI_API_KEYS is not set")


class UserAdvisor:
    """Makes, validates and caches one user's recommendation per request, and reports the outcome."""

    def __init__(
        self,
        *,
        users: UserSource,
        cache: Cache,
        recommender: Recommender,
        outbox: BatchOutbox,
        dead_letters: DeadLetterSink,
        zone: ZoneInfo,
        concurrency: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.users = users
        self.cache = cache
        self.recommender = recommender
        self.outbox = outbox
        self.dead_letters = dead_letters
        self.zone = zone
        self.clock = clock
        self.in_flight = KeyedPool(concurrency)
        #: Batches this process saw run out of Gemini keys: their remaining users are skipped.
        self.exhausted: set[str] = set()

    async def admit(self, event: EventT, done: Callable[[EventT], Awaitable[object]]) -> None:
        """Handle a request once a slot is free; ``done`` (the stream's ack) is called once it is handled.

        A malformed request is dead-lettered and acknowledged; one whose letter is not written is not acknowledged.
        """
        request = await unless_unwritten(
            event, decode_or_dead_letter(event, parse_recommendation_request, self.dead_letters)
        )
        if request is UNWRITTEN:
            return
        if request is None:
            await done(event)
            return

        async def handle() -> bool:
            try:
                for progress in await self.advise(request):
                    await self.outbox.progress(progress)
            except Exception:  # counted as missing; the counter's stall sweep asks for the user again
                log.exception("recommendation batch=%s user=%s: could not report", request.batch_id, request.user_id)
            return True

        await self.in_flight.submit(event, request.user_id, handle, done)

    async def advise(self, request: RecommendationRequest) -> list[BatchProgress]:
        """Make, validate and cache one user's recommendation; the progress to report. Never raises."""
        tag = f"recommendation batch={request.batch_id} user={request.user_id}"
        usage: TokenUsage | None = None

        def progress(kind: ProgressKind, reason: str | None = None) -> BatchProgress:
            return BatchProgress(
                batch_id=request.batch_id,
                kind=kind,
                at=self.clock(),
                user_id=request.user_id,
                reason=reason,
                prompt_tokens=usage.prompt if usage else None,
                output_tokens=usage.output if usage else None,
                total_tokens=usage.total if usage else None,
            )

        if request.batch_id in self.exhausted:
            return [progress(ProgressKind.SKIPPED, "all Gemini keys exhausted")]
        try:
            day = date.fromisoformat(request.day)
            if await self.cache.generated_on(request.user_id) == day:
                log.info("%s: already made today, skipped", tag)
                return [progress(ProgressKind.SKIPPED, "already made today")]
            stats = await self.users.user_stats(request.user_id, day)
            if stats is None:
                log.info("%s: no orders in the window, skipped", tag)
                return [progress(ProgressKind.SKIPPED, "no orders")]
            answer = await self.recommender.recommend(build_prompt(stats))
            usage = answer.usage
            await self.cache.store(
                request.user_id, answer.recommendation, datetime.fromtimestamp(self.clock(), self.zone)
            )
        except AllKeysExhausted as exc:
            first = request.batch_id not in self.exhausted
            self.exhausted.add(request.batch_id)
            skipped = progress(ProgressKind.SKIPPED, "all Gemini keys exhausted")
            if not first:
                return [skipped]
            log.error("%s: every Gemini key is exhausted (%s): batch stopped, remaining users skipped", tag, exc)
            return [progress(ProgressKind.STOPPED, f"all Gemini keys exhausted: {exc}"), skipped]
        except GeminiError as exc:
            usage = exc.usage
            log.warning("%s: failed: %s", tag, exc)
            return [progress(ProgressKind.FAILED, str(exc)[:300])]
        except Exception as exc:  # Redis, PostgreSQL: counted, the batch goes on
            log.error("%s: failed: %s: %s", tag, type(exc).__name__, str(exc)[:200])
            return [progress(ProgressKind.FAILED, type(exc).__name__)]
        log.info("%s: cached", tag)
        return [progress(ProgressKind.SUCCEEDED)]
