"""Hostile events on a real worker: each one contained, its neighbours delivered, nothing lost, nothing forged sent.

Findings 1, 4, 5 and 6 of issue 19: a deeply nested value, a huge value of control bytes, a flood of far-future
dates for one cafe, and records written to our own ``digest-retries`` by someone else.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from agents.console.sources import read_dead_letters
from sandbox.telegram import Reply
from streams.producers import EventPublisher
from streams.settings import Settings
from tests.integration.conftest import start_worker, worker_env
from tests.integration.harness import AUTH, REPO, eventually
from tests.integration.kafka_io import read_topic

pytestmark = pytest.mark.integration
DAY = datetime.now(UTC).date()


def delivered_to(telegram, chat_id: int) -> list:
    return [m for m in telegram.messages if m.chat_id == chat_id and m.delivered]


async def letters_for(settings, predicate) -> list[dict]:
    records, _ = await read_dead_letters(settings)  # what the console reads
    return [letter for _, _, letter in records if predicate(letter)]


async def cafe_with_order(factory, chat_id: int, name: str = "Hostile Cafe"):
    cafe = await factory.cafe(name, chat_id=chat_id)
    combo = await factory.combo(cafe)
    for day in (DAY, DAY + timedelta(days=1)):
        await factory.order(await factory.user("Eve"), combo, day)
    return cafe


def dry_run(env: dict[str, str]) -> dict[str, int]:
    command = [sys.executable, "-m", "faust", "-A", "streams.app", "replay-dead-letters", "--dry-run"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


async def test_a_deeply_nested_event_is_a_letter_the_operators_tools_can_show(
    worker, worker_settings, telegram, factory
):
    cafe = await cafe_with_order(factory, -9_400_001)
    async with EventPublisher(worker_settings) as publisher:
        await publisher.send_raw("deadline-passed", b"[" * 1400, key=str(cafe.id).encode())
        await publisher.deadline_passed(cafe.id, DAY)  # its neighbour, right behind it
    await eventually(lambda: delivered_to(telegram, cafe.tg_chat_id), 30)
    [letter] = await eventually(lambda: letters_for(worker_settings, lambda x: x.get("payload") == "[" * 1400), 30)
    assert letter["reason"] == "not JSON: nested deeper than 16"
    counts = await asyncio.to_thread(dry_run, worker.env)  # planning every letter, this one included, never raises
    assert counts["unreplayable"] >= 1
    url = f"http://127.0.0.1:{worker_settings.web_port}/ops/"
    async with aiohttp.ClientSession() as http, http.get(url, headers=AUTH) as response:
        assert response.status == 200 and "nested deeper than 16" in await response.text()  # the console shows it
    assert worker.proc.poll() is None


async def test_a_huge_event_becomes_a_bounded_letter_and_is_not_lost(worker, worker_settings, telegram, factory):
    value = bytes(range(1, 32)) * 10_000  # 310 KB of control bytes: six JSON characters each in a letter
    async with EventPublisher(worker_settings) as publisher:
        await publisher.send_raw("deadline-passed", value, key=b"31")
    digest = hashlib.sha256(value).hexdigest()
    [letter] = await eventually(lambda: letters_for(worker_settings, lambda x: x.get("payload_sha256") == digest), 30)
    assert letter["truncated"] and letter["payload_size"] == len(value)
    assert len(json.dumps(letter["payload"])) <= worker_settings.dead_letter_max_payload
    assert letter["reason"] == f"value too large ({len(value)} bytes)"


async def test_far_future_dates_are_letters_and_a_repeated_deadline_sends_no_second_digest(
    worker, worker_settings, telegram, factory
):
    cafe = await cafe_with_order(factory, -9_400_002)
    async with EventPublisher(worker_settings) as publisher:
        await publisher.deadline_passed(cafe.id, DAY)
        await eventually(lambda: delivered_to(telegram, cafe.tg_chat_id), 30)
        for days in range(30, 44):  # fourteen far-future dates
            await publisher.deadline_passed(cafe.id, DAY + timedelta(days=days))
        await publisher.deadline_passed(cafe.id, DAY)  # today's deadline delivered again
        await publisher.deadline_passed(cafe.id, DAY + timedelta(days=1))  # a marker behind them all
    await eventually(lambda: len(delivered_to(telegram, cafe.tg_chat_id)) >= 2, 30)
    await asyncio.sleep(1)
    assert len(delivered_to(telegram, cafe.tg_chat_id)) == 2  # today once, tomorrow once

    def far(letter: dict) -> bool:
        return f'"cafe_id": {cafe.id}' in (letter.get("payload") or "") and "outside the accepted window" in str(
            letter.get("reason")
        )

    assert len(await eventually(lambda: _at_least(14, letters_for(worker_settings, far)), 30)) == 14


async def _at_least(count: int, letters) -> list | None:
    found = await letters
    return found if len(found) >= count else None


async def test_a_forged_retry_sends_only_what_the_database_holds_to_the_cafes_chat(
    worker, worker_settings, telegram, factory
):
    cafe = await cafe_with_order(factory, -9_400_003, "Real Cafe")
    forged = {
        "cafe_id": cafe.id,
        "date": DAY.isoformat(),
        "attempt": 1,
        "not_before": time.time(),
        "replay": True,
        "chat_id": -9_499_999,
        "parts": ['<a href="https://pay.example">pay here</a>'],
    }
    async with EventPublisher(worker_settings) as publisher:
        await publisher.send_json("digest-retries", forged, key=str(cafe.id))
    [message] = await eventually(lambda: delivered_to(telegram, cafe.tg_chat_id), 30)
    assert "Real Cafe" in message.text and "pay here" not in message.text
    assert not [m for m in telegram.messages if m.chat_id == -9_499_999]


async def test_a_retry_due_far_ahead_holds_up_no_retry_behind_it(worker, worker_settings, telegram, factory):
    cafe = await cafe_with_order(factory, -9_400_004, "Patient Cafe")
    later = {
        "cafe_id": cafe.id,
        "date": DAY.isoformat(),
        "attempt": 1,
        "not_before": time.time() + 3000,
        "replay": True,
    }
    year_ahead = {**later, "not_before": time.time() + 365 * 86400}
    telegram.script(cafe.tg_chat_id, Reply.server_error(502))  # tomorrow's digest fails once: a retry, behind them
    async with EventPublisher(worker_settings) as publisher:
        await publisher.send_json("digest-retries", later, key=str(cafe.id))
        await publisher.send_json("digest-retries", year_ahead, key=str(cafe.id))
        await publisher.deadline_passed(cafe.id, DAY + timedelta(days=1))
    [message] = await eventually(lambda: delivered_to(telegram, cafe.tg_chat_id), 30)
    assert "Patient Cafe" in message.text
    [letter] = await eventually(
        lambda: letters_for(worker_settings, lambda x: "not_before more than" in str(x.get("reason"))), 30
    )
    assert json.loads(letter["payload"])["not_before"] == year_ahead["not_before"]


async def test_sigterm_ends_a_worker_holding_a_waiting_retry_within_15_s(test_database_url, telegram, tmp_path):
    env = worker_env(test_database_url, TELEGRAM_API_BASE_URL=telegram.base_url)
    proc = start_worker(env, tmp_path)
    settings = Settings.from_env(env)
    waiting = {"cafe_id": 41, "date": DAY.isoformat(), "attempt": 1, "not_before": time.time() + 3000, "replay": True}
    try:
        async with EventPublisher(settings) as publisher:
            await publisher.send_json("digest-retries", waiting, key="41")
        await asyncio.sleep(3)  # taken by now, and held: due in 50 minutes
        started = time.monotonic()
        proc.stop(timeout=30)
        took = time.monotonic() - started
    finally:
        proc.kill()
    assert proc.proc.returncode is not None and took < 15, f"SIGTERM took {took:.1f} s"
    # Not lost: published again (as it came) when the worker stopped.
    assert len(await _copies(settings, waiting)) == 2
    assert "left unacknowledged" not in proc.logs() and "could not be published again" not in proc.logs()


async def _copies(settings, record: dict) -> list:
    return [
        value
        for _, value in await read_topic(settings.kafka_broker_url, settings.topic("digest-retries"), settle=0.5)
        if isinstance(value, dict) and value.get("not_before") == record["not_before"]
    ]
