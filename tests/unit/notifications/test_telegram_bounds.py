"""The Bot API's answer as hostile input: every wait clamped, every odd value classified, nothing unbounded."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator

import pytest

from agents.notifications import telegram
from agents.notifications.budget_policy import MAX_KEY_TTL, BudgetLimits
from agents.notifications.telegram import TelegramClient
from agents.notifications.telegram_errors import (
    DEFAULT_RETRY_AFTER,
    MAX_TELEGRAM_ID,
    TelegramBadRequest,
    TelegramChatMigrated,
    TelegramRetryAfter,
    TelegramUnexpectedResponse,
    classify_response,
    retry_after_of,
)
from agents.notifications.throttle import ThrottleWait, waking_on_stop
from sandbox.telegram import Reply, SandboxTelegram

M = "sendMessage"
TOKEN = "123456:AAH-bounds-unit-SECRET-0123456789"
CHAT = 42


def flood(retry_after: object, status: int = 429) -> dict[str, object]:
    return {
        "ok": False,
        "error_code": status,
        "description": "Too Many Requests",
        "parameters": {"retry_after": retry_after},
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, (0.0, 0.0)),
        (5, (5.0, 5.0)),
        (2.5, (2.5, 2.5)),
        (3600, (3600.0, 3600.0)),
        (1_000_000_000, (3600.0, 1e9)),
        (math.inf, (3600.0, math.inf)),
        (10**400, (3600.0, math.inf)),  # JSON has no size limit on an integer; no float holds it
        (-1, None),
        (-math.inf, None),
        (math.nan, None),
        ("5", None),
        (True, None),
        (None, None),
        ([5], None),
    ],
)
def test_retry_after_is_clamped_or_no_wait_at_all(value: object, expected: tuple[float, float] | None) -> None:
    assert retry_after_of(value, limit=3600.0) == expected


@pytest.mark.parametrize("value", [1_000_000_000, math.inf, 10**400])
def test_a_429_asking_too_long_a_wait_waits_the_most_allowed(value: object) -> None:
    exc = classify_response(M, 429, flood(value), max_retry_after=60.0)
    assert type(exc) is TelegramRetryAfter
    assert (exc.retry_after, exc.clamped, exc.retryable) == (60.0, True, True)


def test_the_default_clamp_is_an_hour() -> None:
    exc = classify_response(M, 429, flood(1_000_000_000))
    assert isinstance(exc, TelegramRetryAfter) and (exc.retry_after, exc.asked) == (3600.0, 1e9)
    assert not classify_response(M, 429, flood(7)).clamped  # type: ignore[union-attr]


@pytest.mark.parametrize("value", [-1, math.nan, -math.inf, "1000000000", False, {"s": 1}])
def test_a_429_with_a_retry_after_that_is_no_wait_waits_the_default(value: object) -> None:
    exc = classify_response(M, 429, flood(value))
    assert type(exc) is TelegramRetryAfter
    assert (exc.retry_after, exc.clamped) == (DEFAULT_RETRY_AFTER, False)


def test_the_default_wait_is_clamped_too() -> None:
    exc = classify_response(M, 429, None, max_retry_after=1.0)
    assert isinstance(exc, TelegramRetryAfter) and exc.retry_after == 1.0


@pytest.mark.parametrize("new_chat_id", [0, MAX_TELEGRAM_ID + 1, -(10**30), 1.5, math.inf, "-100123", None])
def test_a_migration_to_no_chat_id_is_a_bad_request(new_chat_id: object) -> None:
    body = {"ok": False, "description": "Bad Request", "parameters": {"migrate_to_chat_id": new_chat_id}}
    assert type(classify_response(M, 400, body)) is TelegramBadRequest


def test_a_migration_to_the_largest_chat_id_is_taken() -> None:
    body = {"ok": False, "parameters": {"migrate_to_chat_id": -MAX_TELEGRAM_ID}}
    exc = classify_response(M, 400, body)
    assert isinstance(exc, TelegramChatMigrated) and exc.new_chat_id == -MAX_TELEGRAM_ID


@pytest.mark.parametrize("message_id", [0, -5, MAX_TELEGRAM_ID + 1, 10**400, 1.0, math.inf, math.nan])
def test_a_success_with_no_message_id_is_malformed_and_retryable(message_id: object) -> None:
    exc = classify_response(M, 200, {"ok": True, "result": {"message_id": message_id}})
    assert type(exc) is TelegramUnexpectedResponse and exc.retryable


def test_a_description_is_one_short_line() -> None:
    forged = "Bad Request\n[2026-01-01 00:00:00] [1] [CRITICAL] forged line\r\n" + "x" * 1000
    exc = classify_response(M, 400, {"ok": False, "description": forged})
    assert "\n" not in exc.description and "\r" not in exc.description  # type: ignore[union-attr]
    assert len(exc.description) == 300  # type: ignore[union-attr]


@pytest.fixture
async def fake() -> AsyncIterator[SandboxTelegram]:
    async with SandboxTelegram() as server:
        yield server


class Paused:
    """A throttle that records the pauses it was asked for."""

    def __init__(self) -> None:
        self.pauses: list[float] = []

    async def acquire(self, chat_id: int, max_wait: float | None = None) -> float:
        return 0.0

    async def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)


@pytest.mark.parametrize(
    ("raw", "pause"),
    [
        ('{"ok":false,"error_code":429,"parameters":{"retry_after":Infinity}}', 30.0),  # not JSON, but decoded
        ('{"ok":false,"error_code":429,"parameters":{"retry_after":NaN}}', DEFAULT_RETRY_AFTER),
        ('{"ok":false,"error_code":429,"parameters":{"retry_after":1e999}}', 30.0),  # JSON: a float's inf
        ('{"ok":false,"error_code":429,"parameters":{"retry_after":1000000000}}', 30.0),
        ('{"ok":false,"error_code":429,"parameters":{"retry_after":' + "9" * 500 + "}}", 30.0),
        ('{"ok":false,"error_code":429,"parameters":' + "[" * 100_000 + "]" * 100_000 + "}", DEFAULT_RETRY_AFTER),
    ],
)
async def test_the_client_pauses_the_bot_a_bounded_time_whatever_the_answer(
    fake: SandboxTelegram, raw: str, pause: float, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "agents.notifications.telegram")
    throttle = Paused()
    fake.script(CHAT, Reply.raw_json(429, raw))
    async with TelegramClient(
        token=TOKEN, base_url=fake.base_url, timeout=2.0, throttle=throttle, max_retry_after=30.0
    ) as client:
        with pytest.raises(TelegramRetryAfter) as caught:
            await client.send_message(CHAT, "hello")
    assert throttle.pauses == [pause] == [caught.value.retry_after]
    clamped = [r.getMessage() for r in caplog.records if "clamped" in r.getMessage()]
    assert len(clamped) == (pause == 30.0)
    assert all(TOKEN not in line and "123456" in line for line in clamped)  # the bot id, never the token


async def test_an_answer_past_the_body_limit_is_unreadable(fake: SandboxTelegram, monkeypatch) -> None:
    monkeypatch.setattr(telegram, "MAX_BODY", 1000)
    fake.script(CHAT, Reply.raw_json(200, '{"ok":true,"result":{"message_id":7},"pad":"' + "x" * 2000 + '"}'))
    async with TelegramClient(token=TOKEN, base_url=fake.base_url, timeout=2.0) as client:
        with pytest.raises(TelegramUnexpectedResponse, match="not a JSON object"):
            await client.send_message(CHAT, "hello")
        assert await client.send_message(CHAT, "hello") == 1  # a normal answer, under the limit


@pytest.mark.parametrize(
    ("asked", "paused"), [(10.0, 10.0), (1e9, 60.0), (math.inf, 60.0), (-3.0, 0.0), (math.nan, 60.0)]
)
def test_the_budget_pauses_within_its_max_pause(asked: float, paused: float) -> None:
    limits = BudgetLimits(global_per_second=28, chat_interval=1, group_per_minute=20, max_pause=60)
    assert limits.pause_for(asked) == paused


@pytest.mark.parametrize("max_pause", [0.0, -1.0, MAX_KEY_TTL + 1, math.nan])
def test_the_budgets_max_pause_is_at_most_a_day(max_pause: float) -> None:
    with pytest.raises(ValueError, match="max_pause"):
        BudgetLimits(global_per_second=28, chat_interval=1, group_per_minute=20, max_pause=max_pause)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0
        self.stopping = False
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        """Sleeps ``seconds``, or 2 s then "the worker stops" if it is asked to stop at 102."""
        self.slept.append(seconds)
        if self.stop_at is not None and self.t + seconds > self.stop_at:
            self.t, self.stopping = self.stop_at, True
        else:
            self.t += seconds

    stop_at: float | None = None


async def test_a_sleep_that_the_worker_stop_ends_refuses_the_send_with_the_time_left() -> None:
    clock = Clock()
    nap = waking_on_stop(clock.sleep, lambda: clock.stopping, clock.now)
    await nap(1.0)  # an ordinary sleep
    assert clock.t == 101.0
    clock.stop_at = 102.0
    with pytest.raises(ThrottleWait) as caught:
        await nap(5.0)
    assert caught.value.delay == pytest.approx(4.0)
    with pytest.raises(ThrottleWait):  # stopped already: no sleep at all
        await nap(3.0)
    assert clock.slept == [1.0, 5.0]
