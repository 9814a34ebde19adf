"""Hostile Bot API answers on a real worker: a ``retry_after`` of a billion seconds, or ``Infinity``;
and the Redis keys of the bot's budget and of the Gemini keys, bounded whatever they are asked.

Each test has a bot of its own (its own bot id, so its pause key touches no other test), runs a worker
of it against the sandbox Bot API or its budget on the real Redis, and deletes the bot's keys afterwards.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis

from agents.notifications.budget_policy import MAX_KEY_TTL, BudgetLimits
from agents.notifications.shared_budget import SharedBudget
from agents.notifications.throttle import TelegramRateLimits, Throttle, ThrottleWait
from agents.recommendations.keypool import KeyState, Verdict
from agents.recommendations.shared_keys import MAX_STATE_TTL, SharedKeyStates
from sandbox.telegram import Reply, TelegramThread, run_in_thread
from streams.producers import EventPublisher
from streams.redis_connection import redis_client
from streams.settings import Settings
from tests.integration.conftest import start_worker, worker_env
from tests.integration.harness import AUTH, WorkerProcess, eventually

pytestmark = pytest.mark.integration

#: What the Bot API asked for: about 31 years.
A_BILLION = 1_000_000_000
#: The raw JSON a hostile (or broken) Bot API may send: ``Infinity`` is no JSON, Python's decoder takes it.
INFINITY_429 = (
    '{"ok":false,"error_code":429,"description":"Too Many Requests: retry after Infinity",'
    '"parameters":{"retry_after":Infinity}}'
)
#: Seconds of slack on a TTL (the script adds one, and the test reads it a moment later).
TTL_SLACK = 2.0
#: How long SIGTERM may take to end a worker, whatever it waits for.
STOP_WITHIN = 15.0
_chats = iter(range(-6_000_001 - random.randrange(10**5) * 100, -7_000_000_000, -1))


class Bot:
    """A bot of this test alone: its token, its id, its Redis keys."""

    def __init__(self) -> None:
        self.id = str(random.randrange(10**9, 10**10))
        self.token = f"{self.id}:AAH-bounds-SECRET-{uuid.uuid4().hex[:12]}"
        self.paused_key = f"lunch:telegram:{self.id}:paused-until"


@pytest.fixture
async def bot(base_settings: Settings) -> AsyncIterator[Bot]:
    bot = Bot()
    yield bot
    redis = redis_client(base_settings)
    try:
        keys = [key async for key in redis.scan_iter(f"lunch:telegram:{bot.id}:*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


@pytest.fixture
def fake(bot: Bot) -> AsyncIterator[TelegramThread]:
    fake = run_in_thread(expected_token=bot.token)
    yield fake
    fake.stop()


async def cafe_with_orders(factory, day) -> object:
    cafe = await factory.cafe("Bounds cafe", chat_id=next(_chats))
    combo = await factory.combo(cafe, "Business lunch", "450.00")
    await factory.order(await factory.user("Hungry"), combo, day)
    return cafe


async def get(settings: Settings, path: str) -> tuple[int, str]:
    url = f"http://127.0.0.1:{settings.web_port}{path}"
    async with aiohttp.ClientSession() as http, http.get(url, headers=AUTH) as response:
        return response.status, await response.text()


async def digest_state(settings: Settings, cafe_id: int, day: str) -> dict | None:
    status, body = await get(settings, f"/ops/api/digests/?day={day}")
    return json.loads(body)["states"].get(str(cafe_id)) if status == 200 else None


async def paused_ttl(settings: Settings, key: str) -> float:
    """Seconds the bot's pause key lives on (negative: no key, or no TTL)."""
    redis = redis_client(settings)
    try:
        return await redis.pttl(key) / 1000
    finally:
        await redis.aclose()


def requests_to(fake: TelegramThread, chat_id: int) -> list:
    return [m for m in fake.messages if m.chat_id == chat_id]


def sigterm_seconds(worker: WorkerProcess) -> float:
    """SIGTERM the worker; the seconds until it exited (killed, and infinite, past twice ``STOP_WITHIN``)."""
    assert worker.proc is not None
    started = time.monotonic()
    os.killpg(worker.proc.pid, signal.SIGTERM)
    try:
        worker.proc.wait(2 * STOP_WITHIN)
    except subprocess.TimeoutExpired:
        worker.kill()
        return float("inf")
    return time.monotonic() - started


async def deferred(settings: Settings, cafe_id: int, day: str, *, max_wait: float, longest: float) -> dict:
    """The digest's state once it is ``retrying``, its next attempt past ``max_wait`` and within ``longest`` s."""
    state = await eventually(lambda: _retrying(settings, cafe_id, day), 30, 0.3)  # not failed at once, not hung
    ahead = state["next_attempt_at"] - time.time()
    assert max_wait < ahead <= longest + TTL_SLACK, state
    return state


async def _retrying(settings: Settings, cafe_id: int, day: str) -> dict | None:
    """The digest's state if it is ``retrying``; None if it has none yet; any other state fails the test."""
    state = await digest_state(settings, cafe_id, day)
    if state is not None and state["status"] != "retrying":
        raise AssertionError(f"digest is {state['status']}, not retrying: {state.get('last_error')}")
    return state


async def test_faults_retry_after_a_billion_seconds_pauses_the_bot_an_hour_at_most_and_defers(
    test_database_url, factory, bot: Bot, fake: TelegramThread, tmp_path: Path
):
    env = worker_env(test_database_url, TELEGRAM_BOT_TOKEN=bot.token, TELEGRAM_API_BASE_URL=fake.base_url)
    settings = Settings.from_env(env)
    day = datetime.now(settings.zone).date()
    worker = start_worker(env, tmp_path)
    try:
        cafe = await cafe_with_orders(factory, day)
        fake.script(cafe.tg_chat_id, Reply.retry_after(A_BILLION))
        async with EventPublisher(settings) as publisher:
            await publisher.deadline_passed(cafe.id, day)
        await eventually(lambda: requests_to(fake, cafe.tg_chat_id), 30)

        await deferred(
            settings,
            cafe.id,
            day.isoformat(),
            max_wait=settings.telegram_max_wait,
            longest=settings.telegram_max_retry_after,
        )
        ttl = await paused_ttl(settings, bot.paused_key)
        print(f"pause key TTL after retry_after={A_BILLION}: {ttl:.1f} s")
        assert 0 < ttl <= settings.telegram_max_retry_after + TTL_SLACK
        status, body = await get(settings, "/notifications/")
        paused_for = json.loads(body)["budget"]["shared"]["paused_for_s"]
        assert status == 200 and 0 < paused_for <= settings.telegram_max_retry_after + TTL_SLACK
        assert (await get(settings, "/livez"))[0] == 200  # alive: nothing is stuck, the digest waits on the topic
        assert len(requests_to(fake, cafe.tg_chat_id)) == 1  # the bot waits: Telegram is not asked again
        assert "clamped" in worker.logs()
    finally:
        worker.stop()
    assert bot.token not in worker.logs()


@pytest.mark.parametrize(
    "answer", [Reply.raw_json(429, INFINITY_429), Reply.retry_after(40)], ids=["Infinity", "honest-40s"]
)
async def test_faults_sigterm_during_a_flood_wait_ends_the_worker_within_15_s(
    test_database_url, factory, bot: Bot, fake: TelegramThread, tmp_path: Path, answer: Reply
):
    # A pause the digests may wait out in place (TELEGRAM_MAX_WAIT above it): they are mid-flood-wait, in the send.
    env = worker_env(
        test_database_url,
        TELEGRAM_BOT_TOKEN=bot.token,
        TELEGRAM_API_BASE_URL=fake.base_url,
        TELEGRAM_MAX_RETRY_AFTER="60",
        TELEGRAM_MAX_WAIT="120",
    )
    settings = Settings.from_env(env)
    day = datetime.now(settings.zone).date()
    worker = start_worker(env, tmp_path)
    try:
        first, second = await cafe_with_orders(factory, day), await cafe_with_orders(factory, day)
        fake.script(first.tg_chat_id, answer)
        async with EventPublisher(settings) as publisher:
            await publisher.deadline_passed(first.id, day)
            await eventually(lambda: requests_to(fake, first.tg_chat_id), 30)
            await publisher.deadline_passed(second.id, day)  # after the flood answer: waits for the pause too
        await eventually(lambda: "paused for" in worker.logs(), 10)
        ttl = await paused_ttl(settings, bot.paused_key)
        print(f"pause key TTL after a 429 ({answer.status}, {str(answer.body)[-40:]}): {ttl:.1f} s")
        assert 0 < ttl <= 60 + TTL_SLACK
        body = (await get(settings, "/notifications/"))[1]
        assert json.loads(body)["budget"]["worker"]["waiting"] >= 1  # a send is waiting for the pause to end
        assert (await get(settings, "/livez"))[0] == 200
        assert requests_to(fake, second.tg_chat_id) == []  # held by the bot's pause, not sent into it

        seconds = sigterm_seconds(worker)
        print(f"SIGTERM during the flood wait: the worker exited in {seconds:.1f} s")
        assert seconds < STOP_WITHIN
        assert requests_to(fake, second.tg_chat_id) == []  # refused at the stop, not sent early
    finally:
        worker.stop()
    assert bot.token not in worker.logs()


async def test_faults_a_clamped_flood_wait_ends_and_the_digest_arrives(
    test_database_url, factory, bot: Bot, fake: TelegramThread, tmp_path: Path
):
    env = worker_env(
        test_database_url,
        TELEGRAM_BOT_TOKEN=bot.token,
        TELEGRAM_API_BASE_URL=fake.base_url,
        TELEGRAM_MAX_RETRY_AFTER="12",
    )
    settings = Settings.from_env(env)
    day = datetime.now(settings.zone).date()
    worker = start_worker(env, tmp_path)
    try:
        cafe = await cafe_with_orders(factory, day)
        fake.script(cafe.tg_chat_id, Reply.retry_after(A_BILLION))
        async with EventPublisher(settings) as publisher:
            await publisher.deadline_passed(cafe.id, day)
        await deferred(settings, cafe.id, day.isoformat(), max_wait=settings.telegram_max_wait, longest=12)
        sent = await eventually(lambda: [m for m in requests_to(fake, cafe.tg_chat_id) if m.delivered], 40, 0.3)
        first = requests_to(fake, cafe.tg_chat_id)[0]
        assert 12 <= sent[0].received_at - first.received_at <= 30  # the clamped wait, not a billion seconds
        state = await eventually(lambda: digest_state(settings, cafe.id, day.isoformat()), 10, 0.3)
        assert state["status"] in ("retrying", "sent")
    finally:
        worker.stop()
    assert bot.token not in worker.logs()


# -- the budget's and the Gemini keys' Redis keys, on the real Redis ------------------------------------------


@pytest.fixture
async def redis(base_settings: Settings) -> AsyncIterator[Redis]:
    client = redis_client(base_settings, socket_timeout=2)
    yield client
    await client.aclose()


def budget_of(redis: Redis, bot: Bot, *, max_pause: float) -> SharedBudget:
    limits = BudgetLimits(global_per_second=50, chat_interval=0.1, group_per_minute=20, max_pause=max_pause)
    fallback = Throttle(TelegramRateLimits(global_per_second=5))
    return SharedBudget(redis, bot_id=bot.id, limits=limits, fallback=fallback)


async def test_faults_no_key_of_the_budget_outlives_its_bound(redis: Redis, bot: Bot) -> None:
    budget = budget_of(redis, bot, max_pause=30)
    try:
        for asked in (A_BILLION, math.inf, math.nan):
            await budget.pause(asked)
            assert 0 < await redis.pttl(bot.paused_key) <= 31_000
        with pytest.raises(ThrottleWait) as caught:
            await budget.acquire(-5, max_wait=1.0)  # the bot's pause: 30 s, not a billion
        assert 25 < caught.value.delay <= 30.5
        assert budget.stats.deferred == 1
        await redis.delete(bot.paused_key)  # the key gone (an operator), the worker's own pause still holds
        started = time.monotonic()
        with pytest.raises(ThrottleWait):
            await budget.acquire(-5, max_wait=1.0)
        assert time.monotonic() - started < 1.0  # refused at once, not held on the local pause
        keys = [key async for key in redis.scan_iter(f"lunch:telegram:{bot.id}:*")]
        ttls = [await redis.pttl(key) for key in keys]
        assert keys and all(0 < ttl <= MAX_KEY_TTL * 1000 for ttl in ttls), ttls
    finally:
        await budget.close()


async def test_faults_a_pause_left_by_an_older_worker_is_cut_back(redis: Redis, bot: Bot) -> None:
    now = (await redis.time())[0]
    await redis.set(bot.paused_key, f"{now + A_BILLION:.6f}", ex=A_BILLION)  # what the finding saw: ~31 years
    budget = budget_of(redis, bot, max_pause=20)
    try:
        with pytest.raises(ThrottleWait) as caught:
            await budget.acquire(7, max_wait=1.0)
        assert caught.value.delay <= 20.5
        assert 0 < await redis.pttl(bot.paused_key) <= 21_000
        await redis.set(bot.paused_key, f"{now + A_BILLION:.6f}", ex=A_BILLION)
        await budget.pause(5)  # a 429 now: cut back too, not kept because it is longer
        assert 0 < await redis.pttl(bot.paused_key) <= 21_000
    finally:
        await budget.close()


async def test_faults_a_gemini_keys_state_lives_a_day_at_most(redis: Redis) -> None:
    prefix = f"lunch:gemini:key:test-{uuid.uuid4().hex[:8]}:"
    states = SharedKeyStates(redis, prefix=prefix, key_rpm=0.001)  # a pace of 17 hours between requests
    try:
        await states.report(Verdict("a", KeyState.PARKED, math.inf))
        await states.report(Verdict("b", KeyState.DISABLED, 1e12))
        await redis.hset(prefix + "c", mapping={"blocked_until": 10**15})
        await redis.pexpire(prefix + "c", 10**12)  # an older worker's: ~31 years
        await states.acquire(["a", "b", "c", "d"], [3, 0, 1, 2])  # takes "d", paced for 17 h
        for fp in "abcd":
            assert 0 < await redis.pttl(prefix + fp) <= MAX_STATE_TTL * 1000, fp
    finally:
        await redis.delete(*(prefix + fp for fp in "abcd"))
