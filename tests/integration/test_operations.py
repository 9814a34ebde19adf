"""Running it like a service: web pages, metrics, CLI commands and the dead-letter replay, on a real worker."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sandbox.telegram import Reply
from streams.producers import EventPublisher
from streams.settings import Settings
from tests.integration.conftest import BOT_TOKEN
from tests.integration.harness import AUTH, REPO, eventually
from tests.integration.kafka_io import read_topic

pytestmark = pytest.mark.integration
DAY = datetime.now(UTC).date()  # deadline events must name a date near today (EVENT_DATE_DAYS_*)


async def get(settings: Settings, path: str) -> tuple[int, str]:
    url = f"http://127.0.0.1:{settings.web_port}{path}"
    async with aiohttp.ClientSession(headers=AUTH) as http, http.get(url) as response:
        return response.status, await response.text()


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "faust", "-A", "streams.app", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout + done.stderr


def counts(output: str) -> dict[str, int]:
    return json.loads(output.splitlines()[0])


def to_chat(telegram, chat_id: int, *, delivered: bool) -> list:
    return [m for m in telegram.messages if m.chat_id == chat_id and m.delivered == delivered]


async def cafe_with_order(factory, chat_id: int):
    cafe = await factory.cafe("Ops Cafe", chat_id=chat_id)
    combo = await factory.combo(cafe)
    await factory.order(await factory.user("Operator"), combo, DAY)
    return cafe


async def test_health_reports_every_service(worker, worker_settings):
    status, body = await get(worker_settings, "/health")
    assert status == 200
    health = json.loads(body)
    assert health["status"] == "ok"
    assert {name: check["ok"] for name, check in health["checks"].items()} == {
        "kafka": True,
        "postgres": True,
        "redis": True,
    }


async def test_cli_send_deadline_then_views_and_metrics_show_it(worker, worker_settings, telegram, factory):
    cafe = await cafe_with_order(factory, -8_000_001)
    out = cli(worker.env, "send-deadline", "--cafe-id", str(cafe.id), "--date", DAY.isoformat())
    assert f"deadline-passed published: cafe {cafe.id}, {DAY.isoformat()}" in out
    await eventually(lambda: to_chat(telegram, cafe.tg_chat_id, delivered=True))
    status, body = await get(worker_settings, "/notifications/")
    assert status == 200
    view = json.loads(body)
    assert view["digests"]["sent"] >= 1
    assert view["telegram"]["responses"]["200"] >= 1
    assert view["telegram"]["bot_id"] == BOT_TOKEN.split(":")[0]

    status, text = await get(worker_settings, "/metrics")
    assert status == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("lunch_digests_total", (("outcome", "sent"),))] >= 1
    assert samples[("lunch_telegram_responses_total", (("status", "200"),))] >= 1
    assert any(name.startswith("lunch_streams_") for name, _ in samples)  # Faust's own sensor
    assert samples[("lunch_partition_reseeks_total", ())] == 0  # no stall on a worker that started alone
    assert samples[("lunch_consumer_flow_resumes_total", ())] == 0

    for path in ("/", "/notifications/", "/metrics", "/health", "/recommendations/batches/"):
        status, page = await get(worker_settings, path)
        assert status == 200, path
        assert BOT_TOKEN not in page and BOT_TOKEN.split(":")[1] not in page


async def test_dead_letters_are_replayed_by_the_cli_and_delivered(worker, worker_settings, telegram, factory):
    cafe = await cafe_with_order(factory, -8_000_002)
    telegram.script(cafe.tg_chat_id, Reply.kicked())
    async with EventPublisher(worker_settings) as publisher:
        await publisher.deadline_passed(cafe.id, DAY)
        await publisher.send_raw("deadline-passed", b"garbage", key=b"1")
    await eventually(lambda: f"digest cafe={cafe.id} date={DAY} attempt=1: delivery failed" in worker.logs())
    letters = await read_topic(worker_settings.kafka_broker_url, worker_settings.topic("dead-letters"))
    assert str(cafe.id) in [k for k, _ in letters]

    # The bot was added back to the chat; the operator replays the dead letters.
    assert counts(cli(worker.env, "replay-dead-letters", "--dry-run")) == {"replayed": 1, "unreplayable": 1}
    assert to_chat(telegram, cafe.tg_chat_id, delivered=True) == []  # a dry run publishes nothing
    assert counts(cli(worker.env, "replay-dead-letters")) == {"replayed": 1, "unreplayable": 1}
    [delivered] = await eventually(lambda: to_chat(telegram, cafe.tg_chat_id, delivered=True), 30)
    assert "Ops Cafe" in delivered.text
    assert "replayed from the dead letters" in worker.logs()
    # Replaying again publishes nothing: the command's consumer group has read every letter.
    assert counts(cli(worker.env, "replay-dead-letters")) == {"replayed": 0, "unreplayable": 0}


async def test_faust_send_publishes_a_plain_event_the_worker_handles(worker, worker_settings, telegram, factory):
    cafe = await cafe_with_order(factory, -8_000_003)
    value = json.dumps({"cafe_id": cafe.id, "date": DAY.isoformat()})
    cli(worker.env, "send", worker_settings.topic("deadline-passed"), value, "--key", str(cafe.id))
    [message] = await eventually(lambda: to_chat(telegram, cafe.tg_chat_id, delivered=True))
    assert "Ops Cafe" in message.text
