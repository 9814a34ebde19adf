"""Notification faults on the real services: a Bot API down for a minute."""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest

from streams.producers import EventPublisher
from streams.sandbox.telegram import run_in_thread
from streams.settings import Settings
from tests.integration.conftest import BOT_TOKEN, start_worker, worker_env
from tests.integration.harness import eventually
from tests.integration.kafka_io import read_topic

pytestmark = pytest.mark.integration
DAY = date(2026, 11, 25)


async def cafes_with_orders(factory, count: int, first_chat: int) -> list:
    user = await factory.user("Regular")
    cafes = []
    for i in range(count):
        cafe = await factory.cafe(f"Fault cafe {i}", chat_id=first_chat - i)
        await factory.order(user, await factory.combo(cafe), DAY)
        cafes.append(cafe)
    return cafes


def delivered_per_chat(fake, chats: set[int]) -> Counter:
    return Counter(m.chat_id for m in fake.messages if m.delivered and m.chat_id in chats)


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
        chats = {c.tg_chat_id for c in cafes}
        fake.outage(60)
        settings = Settings.from_env(env)
        async with EventPublisher(settings) as publisher:
            for cafe in cafes:
                await publisher.deadline_passed(cafe.id, DAY)
        await eventually(lambda: set(delivered_per_chat(fake, chats)) == chats, 120, 0.5)
        answers = Counter(m.status for m in fake.messages if m.chat_id in chats)
        assert answers[502] >= 20 and answers[200] == 20
        assert set(delivered_per_chat(fake, chats).values()) == {1}
        letters = await read_topic(settings.kafka_broker_url, settings.topic("dead-letters"))
        assert letters == []
    finally:
        worker.stop()
        fake.stop()

