"""Notification faults that change a worker for good: an unreachable Bot API, a rejected token."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sandbox.telegram import Reply, run_in_thread
from streams.producers import EventPublisher
from streams.settings import Settings
from tests.integration.conftest import BOT_TOKEN, start_worker, worker_env
from tests.integration.harness import eventually, free_port
from tests.integration.kafka_io import read_topic

pytestmark = pytest.mark.integration
DAY = datetime.now(UTC).date()  # deadline events must name a date near today (EVENT_DATE_DAYS_*)


async def make_cafe(factory, chat_id: int):
    cafe = await factory.cafe("Fault Cafe", chat_id=chat_id)
    combo = await factory.combo(cafe)
    await factory.order(await factory.user("Faulty"), combo, DAY)
    return cafe


async def test_unreachable_bot_api_is_retried_then_dead_lettered_without_leaking_the_token(
    test_database_url, factory, tmp_path
):
    closed = free_port()  # nothing listens here
    env = worker_env(test_database_url, TELEGRAM_API_BASE_URL=f"http://127.0.0.1:{closed}")
    worker = start_worker(env, tmp_path)
    try:
        cafe = await make_cafe(factory, -7_000_001)
        settings = Settings.from_env(env)
        async with EventPublisher(settings) as publish:
            await publish.deadline_passed(cafe.id, DAY)
        prefix = f"digest cafe={cafe.id} date={DAY}"
        await eventually(lambda: f"{prefix} attempt=3: delivery failed: gave up after 3" in worker.logs(), 30)
        logs = worker.logs()
        assert f"{prefix} attempt=1: sendMessage:" in logs and "retry in" in logs
        letters = await read_topic(settings.kafka_broker_url, settings.topic("dead-letters"))
        assert [k for k, _ in letters] == [str(cafe.id)]
        assert BOT_TOKEN not in logs
        assert BOT_TOKEN.split(":")[1] not in logs
        assert BOT_TOKEN not in str(letters)
    finally:
        worker.stop()
    assert BOT_TOKEN not in worker.logs()


@pytest.mark.parametrize("rejection", ["401", "404"])
async def test_rejected_token_stops_sending_and_alerts(test_database_url, factory, tmp_path, rejection):
    fake = run_in_thread(expected_token="999:another-bot-token") if rejection == "401" else run_in_thread()
    env = worker_env(test_database_url, TELEGRAM_API_BASE_URL=fake.base_url)
    worker = start_worker(env, tmp_path)
    try:
        first, second = await make_cafe(factory, -7_100_001), await make_cafe(factory, -7_100_002)
        if rejection == "404":
            fake.script(first.tg_chat_id, Reply.not_found())
        settings = Settings.from_env(env)
        async with EventPublisher(settings) as publish:
            await publish.deadline_passed(first.id, DAY)
            await eventually(lambda: "telegram bot token rejected" in worker.logs(), 20)
            await publish.deadline_passed(second.id, DAY)
            await eventually(lambda: f"digest cafe={second.id} date={DAY} attempt=1: delivery failed" in worker.logs())
        assert fake.requests == 1  # nothing was sent after the rejection
        assert worker.logs().count("telegram bot token rejected") == 1
        assert "CRITICAL" in worker.logs()
        letters = await read_topic(settings.kafka_broker_url, settings.topic("dead-letters"))
        assert sorted(k for k, _ in letters) == sorted([str(first.id), str(second.id)])
    finally:
        worker.stop()
        fake.stop()
    assert BOT_TOKEN not in worker.logs()
