"""Notification faults on the real services: a worker killed mid-stream, one of two stopped, a Bot API down."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from sandbox.telegram import run_in_thread
from streams.producers import EventPublisher
from streams.settings import Settings
from tests.integration.conftest import BOT_TOKEN, start_worker, worker_env
from tests.integration.harness import WorkerProcess, eventually, free_port
from tests.integration.kafka_io import read_topic

pytestmark = pytest.mark.integration
DAY = datetime.now(UTC).date()  # deadline events must name a date near today (EVENT_DATE_DAYS_*)


async def cafes_with_orders(factory, count: int, first_chat: int) -> list:
    user = await factory.user("Regular")
    cafes = []
    for i in range(count):
        cafe = await factory.cafe(f"Fault cafe {i}", chat_id=first_chat - i)
        await factory.order(user, await factory.combo(cafe), DAY)
        cafes.append(cafe)
    return cafes


async def publish_deadlines(env: dict[str, str], cafes: list) -> set[int]:
    """Publish each cafe's deadline of ``DAY``, as the backend does; return their chat ids."""
    async with EventPublisher(Settings.from_env(env)) as publisher:
        for cafe in cafes:
            await publisher.deadline_passed(cafe.id, DAY)
    return {c.tg_chat_id for c in cafes}


def delivered_per_chat(fake, chats: set[int]) -> Counter:
    return Counter(m.chat_id for m in fake.messages if m.delivered and m.chat_id in chats)


async def every_chat_delivered(fake, chats: set[int], timeout: float, interval: float = 0.1) -> None:
    """Wait until every chat got its digest; fail naming the chats still waiting."""
    try:
        await eventually(lambda: set(delivered_per_chat(fake, chats)) == chats, timeout, interval)
    except AssertionError:
        missing = sorted(chats - set(delivered_per_chat(fake, chats)))
        waiting = f"{len(missing)} of {len(chats)} chats got no digest in {timeout}s"
        raise AssertionError(f"{waiting}: {missing[:20]}") from None


#: The rebalance tests are about moving partitions, not about giving up: the production attempts and Bot API
#: timeout (a slow moment of a loaded machine must not dead-letter a digest), with short back-offs.
PATIENT_DELIVERY = {"TELEGRAM_TIMEOUT": "10", "NOTIFY_MAX_ATTEMPTS": "8", "NOTIFY_BACKOFF_MAX": "5"}

#: Digests a kill -9 may send twice: sent, but their delivery state not yet in the changelog
#: (at most the cafes in flight, ``DIGEST_CONCURRENCY``, plus the producer's last batch).
KILL_DUPLICATE_WINDOW = 16


async def test_worker_killed_mid_stream_of_500_delivers_every_digest(test_database_url, factory, tmp_path):
    fake = run_in_thread(expected_token=BOT_TOKEN)
    env = worker_env(
        test_database_url, TELEGRAM_API_BASE_URL=fake.base_url, TELEGRAM_GLOBAL_RATE="100", **PATIENT_DELIVERY
    )
    worker = start_worker(env, tmp_path)
    try:
        chats = await publish_deadlines(env, await cafes_with_orders(factory, 500, -10_000_000))
        await eventually(lambda: sum(delivered_per_chat(fake, chats).values()) >= 150, 60)
        worker.kill()  # kill -9 in the middle of the stream
        killed_at = sum(delivered_per_chat(fake, chats).values())
        assert killed_at < 500, "the stream was over before the kill: nothing was tested"
        worker.start()
        await every_chat_delivered(fake, chats, 120)
        duplicates = sum(n - 1 for n in delivered_per_chat(fake, chats).values())
        print(f"killed after {killed_at} digests; sent twice after the restart: {duplicates}")
        assert duplicates <= KILL_DUPLICATE_WINDOW
    finally:
        worker.kill()
        fake.stop()


async def test_two_workers_one_stopped_mid_stream_every_digest_arrives_once(test_database_url, factory, tmp_path):
    fake = run_in_thread(expected_token=BOT_TOKEN)
    env = worker_env(
        test_database_url, TELEGRAM_API_BASE_URL=fake.base_url, TELEGRAM_GLOBAL_RATE="50", **PATIENT_DELIVERY
    )
    first = start_worker(env, tmp_path)
    second = WorkerProcess({**env, "WEB_PORT": str(free_port())}, tmp_path / "second.log").start()
    try:
        await eventually(lambda: first.logs().count("Recovery]: Worker ready") >= 2, 30)  # both in the group
        chats = await publish_deadlines(env, await cafes_with_orders(factory, 200, -13_000_000))
        await eventually(lambda: sum(delivered_per_chat(fake, chats).values()) >= 40, 30)
        second.stop()  # a clean stop: its partitions and their table state move to the first worker
        assert len(delivered_per_chat(fake, chats)) < 200, "the stream was over before the stop: nothing was tested"
        await every_chat_delivered(fake, chats, 90)
        assert set(delivered_per_chat(fake, chats).values()) == {1}
        assert "digest cafe=" in second.logs()  # both workers did part of the work
    finally:
        second.stop()
        first.stop()
        fake.stop()


async def test_bot_api_down_for_a_minute_then_every_digest_arrives_once(test_database_url, factory, tmp_path):
    fake = run_in_thread(expected_token=BOT_TOKEN)
    env = worker_env(
        test_database_url,
        TELEGRAM_API_BASE_URL=fake.base_url,
        NOTIFY_BACKOFF_BASE="1",
        NOTIFY_BACKOFF_MAX="8",
        NOTIFY_MAX_ATTEMPTS="20",
    )
    worker = start_worker(env, tmp_path)
    try:
        cafes = await cafes_with_orders(factory, 20, -11_000_000)
        fake.outage(60)
        chats = await publish_deadlines(env, cafes)
        settings = Settings.from_env(env)
        await every_chat_delivered(fake, chats, 120, 0.5)
        answers = Counter(m.status for m in fake.messages if m.chat_id in chats)
        assert answers[502] >= 20 and answers[200] == 20
        assert set(delivered_per_chat(fake, chats).values()) == {1}
        letters = await read_topic(settings.kafka_broker_url, settings.topic("dead-letters"))
        assert letters == []
    finally:
        worker.stop()
        fake.stop()
