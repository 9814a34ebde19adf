"""Workers bound to every interface advertise the host the others reach them at (WEB_ADVERTISED_HOST).

Two workers bound to 0.0.0.0, advertised as 127.0.0.2 and 127.0.0.3 (both loopback, each its own address): the
console of one shows the digests of the cafes whose partitions the other owns, read from it at its advertised
address, whose ``Host`` it accepts (the default WEB_ALLOWED_HOSTS holds the advertised host).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import aiohttp
import pytest

from agents.notifications.dates import partition_of
from streams.producers import EventPublisher
from streams.settings import Settings
from tests.integration.conftest import worker_env
from tests.integration.harness import AUTH, WorkerProcess, eventually, free_port
from tests.integration.kafka_io import group_state

pytestmark = pytest.mark.integration
DAY = datetime.now(UTC).date()
ADDRESSES = ("127.0.0.2", "127.0.0.3")


@pytest.fixture(scope="module")
def pair(test_database_url, telegram, tmp_path_factory) -> Iterator[list[WorkerProcess]]:
    env = worker_env(test_database_url, TELEGRAM_API_BASE_URL=telegram.base_url, WEB_BIND="0.0.0.0")
    logs = tmp_path_factory.mktemp("advertised")
    workers: list[WorkerProcess] = []
    try:
        for address in ADDRESSES:
            own = {**env, "WEB_PORT": str(free_port()), "WEB_ADVERTISED_HOST": address}
            workers.append(WorkerProcess(own, logs / f"{address}.log").start())
        settings = Settings.from_env(env)

        async def settled() -> bool:
            state, members = await group_state(settings.kafka_broker_url, settings.app_id)
            return state == "Stable" and members == 2

        asyncio.run(eventually(settled, 90, 0.5))
        yield workers
    finally:
        for worker in workers:
            worker.stop()


async def page(worker: WorkerProcess, address: str) -> str:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://{address}:{worker.env['WEB_PORT']}/ops/?day={DAY.isoformat()}", headers=AUTH) as response,
    ):
        assert response.status == 200
        return await response.text()


async def test_the_console_of_one_shows_the_digests_the_other_holds(pair, factory, telegram):
    settings = Settings.from_env(pair[0].env)
    cafes = []
    for i in range(8):  # over every partition: both workers own some
        cafe = await factory.cafe(f"Advertised Cafe {i}", chat_id=-9_600_000 - i)
        await factory.order(await factory.user(f"Guest {i}"), await factory.combo(cafe), DAY)
        cafes.append(cafe)
    assert len({partition_of(str(c.id), settings.topic_partitions) for c in cafes}) > 1
    async with EventPublisher(settings) as publisher:
        for cafe in cafes:
            await publisher.deadline_passed(cafe.id, DAY)
    chats = {c.tg_chat_id for c in cafes}
    await eventually(lambda: chats <= {m.chat_id for m in telegram.messages if m.delivered}, 60)
    for worker in pair:  # each worker sent some of them: each owns partitions of the delivery table
        assert any(
            f"digest cafe={c.id} " in line and "sent to chat" in line
            for c in cafes
            for line in worker.logs().splitlines()
        )

    async def every_cafe_shown() -> str | None:
        text = await page(pair[0], ADDRESSES[0])
        return text if all(c.name in text for c in cafes) else None

    text = await eventually(every_cafe_shown, 30, 0.5)
    assert f"http://{ADDRESSES[0]}:{pair[0].env['WEB_PORT']}" in text  # the worker names itself as the others see it
    assert "did not answer" not in text and "assignment unknown" not in text
    assert "0.0.0.0" not in text
