"""Three real workers of one bot at the README's defaults, against a Bot API that enforces Telegram's limits.

The workers share the bot's budget through Redis: together they stay under Telegram's 30 messages/s, a chat
shared by cafes of different workers keeps its interval, a 429 pauses them all and dead-letters nothing, and
with Redis down they fall back to their local rate and come back to the shared budget after.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
from collections import Counter
from collections.abc import Iterator

import aiohttp
import pytest
from aiokafka.partitioner import murmur2

from sandbox.telegram import Reply, TelegramThread, run_in_thread
from streams.settings import Settings
from tests.integration.conftest import BOT_TOKEN, worker_env
from tests.integration.harness import AUTH, WorkerProcess, eventually, free_port
from tests.integration.kafka_io import group_state
from tests.integration.test_faults_notifications import (
    DAY,
    cafes_with_orders,
    delivered_per_chat,
    every_chat_delivered,
    publish_deadlines,
)
from tests.integration.test_faults_services import services

pytestmark = pytest.mark.integration
WORKERS = 3
FALLBACK_RATE = 2.0


@pytest.fixture(scope="module")
def bot_api() -> Iterator[TelegramThread]:
    fake = run_in_thread(expected_token=BOT_TOKEN, enforce_limits=True)
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def fleet(test_database_url: str, bot_api: TelegramThread, tmp_path_factory) -> Iterator[list[WorkerProcess]]:
    """Three workers of one app and one bot, started one after another; only test settings are overridden."""
    env = worker_env(
        test_database_url,
        TELEGRAM_API_BASE_URL=bot_api.base_url,
        TELEGRAM_FALLBACK_RATE=str(FALLBACK_RATE),
        NOTIFY_MAX_ATTEMPTS="8",
        TELEGRAM_TIMEOUT="10",
    )
    logs = tmp_path_factory.mktemp("fleet")
    workers: list[WorkerProcess] = []
    try:
        for i in range(WORKERS):
            port = env["WEB_PORT"] if i == 0 else str(free_port())
            workers.append(WorkerProcess({**env, "WEB_PORT": port}, logs / f"worker-{i}.log").start())
        yield workers
    finally:
        for worker in workers:
            worker.stop()


async def notifications(worker: WorkerProcess) -> dict:
    url = f"http://127.0.0.1:{worker.env['WEB_PORT']}/notifications/"
    async with aiohttp.ClientSession(headers=AUTH) as http, http.get(url) as response:
        return json.loads(await response.text())


async def ready(worker: WorkerProcess) -> bool:
    url = f"http://127.0.0.1:{worker.env['WEB_PORT']}/readyz"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status == 200


async def all_in_group(fleet: list[WorkerProcess]) -> None:
    """Wait until the last worker's join has settled: the group is stable with every worker in it, and each worker
    has recovered its partitions (/readyz). Counting rebalances in the logs raced: a join arriving during the
    previous one's recovery merges the two."""
    settings = Settings.from_env(fleet[0].env)

    async def settled() -> bool:
        state, members = await group_state(settings.kafka_broker_url, settings.app_id)
        return state == "Stable" and members == len(fleet) and all([await ready(w) for w in fleet])

    await eventually(settled, 60, 0.5)


def most_in_any_second(times: list[float]) -> int:
    times = sorted(times)
    return max((bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times)), default=0)


async def dead_lettered(fleet: list[WorkerProcess]) -> int:
    return sum([(await notifications(w))["digests"].get("dead_lettered", 0) for w in fleet])


async def test_a_burst_on_three_workers_draws_no_429_and_each_digest_arrives_once(fleet, bot_api, factory):
    await all_in_group(fleet)
    cafes = await cafes_with_orders(factory, 150, -20_000_000)
    shared_chat = -20_999_999  # six cafes share one group chat, keyed into every partition: so on every worker
    sharing = await cafes_in_every_partition(factory, shared_chat, 6, int(fleet[0].env["TOPIC_PARTITIONS"]))
    chats = await publish_deadlines(fleet[0].env, [*cafes, *sharing])
    await every_chat_delivered(bot_api, chats, 90)
    await eventually(lambda: delivered_per_chat(bot_api, {shared_chat})[shared_chat] >= 6, 30)
    ours = [m for m in bot_api.messages if m.chat_id in chats]
    assert Counter(m.status for m in ours) == {200: 156}  # no 429: the fleet kept the bot's rate
    assert delivered_per_chat(bot_api, chats)[shared_chat] == 6
    assert set(delivered_per_chat(bot_api, chats - {shared_chat}).values()) == {1}
    # The README's TELEGRAM_GLOBAL_RATE for the three together (one more within a second: arrival jitter).
    assert most_in_any_second([m.received_at for m in ours]) <= Settings().telegram_global_rate + 1
    to_shared = sorted(m.received_at for m in ours if m.chat_id == shared_chat)
    assert min(b - a for a, b in itertools.pairwise(to_shared)) >= 0.9  # 1 s per chat, fleet-wide
    handled = [w for w in fleet if any(f"digest cafe={c.id} " in w.logs() for c in sharing)]
    assert len(handled) >= 2  # the shared chat's cafes were handled by different workers
    assert await dead_lettered(fleet) == 0


async def cafes_in_every_partition(factory, chat_id: int, count: int, partitions: int) -> list:
    """``count`` cafes with an order, all with ``chat_id``, whose keys fall in every partition (murmur2)."""
    user = await factory.user("Sharer")
    cafes: list = []
    while len(cafes) < count:
        cafe = await factory.cafe(f"Shared chat cafe {len(cafes)}", chat_id=chat_id)
        taken = Counter(partition_of(c.id, partitions) for c in cafes)
        if taken[partition_of(cafe.id, partitions)] <= min(taken.get(p, 0) for p in range(partitions)):
            await factory.order(user, await factory.combo(cafe), DAY)
            cafes.append(cafe)
    return cafes


def partition_of(cafe_id: int, partitions: int) -> int:
    return (murmur2(str(cafe_id).encode()) & 0x7FFFFFFF) % partitions


async def test_a_429_storm_pauses_the_whole_bot_and_dead_letters_nothing(fleet, bot_api, factory):
    await all_in_group(fleet)
    pauses_before = await pauses(fleet)
    cafes = await cafes_with_orders(factory, 60, -21_000_000)
    bot_api.outage(4.0, Reply.retry_after(4))  # every request answered 429 "retry after 4" for 4 s
    chats = await publish_deadlines(fleet[0].env, cafes)
    await every_chat_delivered(bot_api, chats, 90)
    ours = [m for m in bot_api.messages if m.chat_id in chats]
    answers = Counter(m.status for m in ours)
    assert answers[200] == 60 and set(delivered_per_chat(bot_api, chats).values()) == {1}
    # Each 429 paused every worker: no more than the sends already in flight met one (3 workers x 8 cafes).
    assert answers[429] <= WORKERS * 8, answers
    assert await dead_lettered(fleet) == 0
    assert await pauses(fleet) - pauses_before == answers[429]


async def pauses(fleet: list[WorkerProcess]) -> int:
    return sum([(await notifications(w))["budget"]["worker"]["pauses"] for w in fleet])


async def test_redis_down_for_30s_mid_burst_falls_back_and_returns(fleet, bot_api, factory):
    await all_in_group(fleet)
    cafes = await cafes_with_orders(factory, 320, -22_000_000)
    chats = await publish_deadlines(fleet[0].env, cafes)
    await eventually(lambda: sum(delivered_per_chat(bot_api, chats).values()) >= 40, 30)
    services("stop", "redis")
    stopped = asyncio.get_running_loop().time()
    try:
        await asyncio.sleep(30)
        during = [m.received_at for m in bot_api.messages if m.chat_id in chats]
    finally:
        services("start", "redis")
    assert asyncio.get_running_loop().time() - stopped >= 30
    await every_chat_delivered(bot_api, chats, 120)
    ours = [m for m in bot_api.messages if m.chat_id in chats]
    assert Counter(m.status for m in ours) == {200: 320} and set(delivered_per_chat(bot_api, chats).values()) == {1}
    # The outage's middle (past the sends booked before it): at most the three workers' fallback rates.
    window = sorted(during)[-int(WORKERS * FALLBACK_RATE * 20) :]
    assert most_in_any_second(window) <= WORKERS * FALLBACK_RATE + 1
    assert await dead_lettered(fleet) == 0
    states = [(await notifications(w))["budget"] for w in fleet]
    assert all(s["worker"]["fallbacks"] >= 1 for s in states if s["worker"]["fallback_sends"])
    assert sum(s["worker"]["fallback_sends"] for s in states) >= 40
    down, back = "telegram budget: Redis unreachable", "telegram budget: Redis is back"  # the budget's own lines
    await eventually(lambda: all(back in w.logs() for w in fleet if down in w.logs()), 30)
    assert all(w.logs().count(down) <= 1 for w in fleet)  # one WARNING per outage
