"""Daily recommendations end to end: daily task → real worker → PostgreSQL → fake Gemini → Redis."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from redis.asyncio import Redis

from agents.recommendations.cache import TTL_SECONDS
from sandbox.gemini import answer, rate_limited, run_in_thread, unavailable
from streams.producers import EventPublisher
from streams.settings import Settings
from tests.conftest import FreshDatabase
from tests.integration.conftest import start_worker, worker_env
from tests.integration.factory import Factory
from tests.integration.harness import AUTH, eventually, unique_name
from tests.integration.kafka_io import read_topic
from tests.integration.recommendations import (
    KEYS,
    REDIS_URL,
    ZONE,
    active_user,
    batches,
    cached,
    finished_batch,
    reset_data,
    today,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def reco_database(services):
    db = FreshDatabase(unique_name("lunch_reco").replace("-", "_")).create()
    yield db
    db.drop()


@pytest.fixture(scope="module")
def gemini():
    fake = run_in_thread(latency=0.05)
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def worker(reco_database, gemini, tmp_path_factory):
    env = worker_env(
        reco_database.url,
        GEMINI_API_KEYS=",".join(KEYS),
        GEMINI_API_BASE_URL=gemini.base_url,
        REDIS_URL=REDIS_URL,
        TIMEZONE=ZONE,
    )
    proc = start_worker(env, tmp_path_factory.mktemp("reco"))
    yield proc
    proc.stop()
    for key in KEYS:
        assert key not in proc.logs(), "an API key leaked into the worker's log"


@pytest.fixture
async def factory(reco_database):
    f = Factory(reco_database.url)
    yield f
    await f.close()


@pytest.fixture
async def redis():
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def clean(factory, redis, gemini):
    await reset_data(factory, redis)
    gemini.reset()


@pytest.fixture
def settings(worker) -> Settings:
    return Settings.from_env(worker.env)


async def request_batch(settings: Settings, task_type: str = "generate_recommendations") -> set[str]:
    """Publish a daily task; return the batch ids known before it."""
    known = {b["batch_id"] for b in await batches(settings.web_port)}
    async with EventPublisher(settings) as publisher:
        await publisher.daily_task(task_type)
    return known


async def test_only_active_users_get_a_validated_cached_recommendation(clean, worker, settings, factory, redis, gemini):
    active = await active_user(factory, "Alice <b>")
    few = await active_user(factory, "Four Orders", orders=4)
    cancelled = await active_user(factory, "Cancelled", orders=5, status="cancelled")
    old = await active_user(factory, "Long Ago", orders=6, days_ago=30)

    batch = await finished_batch(settings.web_port, await request_batch(settings))

    assert (batch["total"], batch["succeeded"], batch["failed"], batch["skipped"]) == (1, 1, 0, 0)
    assert batch["status"] == "finished" and batch["trigger"] == "manual" and batch["day"] == today().isoformat()
    entry = await cached(redis, active.id)
    assert set(entry) == {"summary", "tips", "generated_at"}
    assert isinstance(entry["summary"], str) and entry["summary"]
    assert 1 <= len(entry["tips"]) <= 5 and all(isinstance(t, str) and t for t in entry["tips"])
    generated = datetime.fromisoformat(entry["generated_at"])
    assert generated.utcoffset() is not None and generated.utcoffset().total_seconds() == 3 * 3600
    ttl = await redis.ttl(f"recommendations:user:{active.id}")
    assert TTL_SECONDS - 30 < ttl <= TTL_SECONDS
    for user in (few, cancelled, old):
        assert await cached(redis, user.id) is None
    [request] = gemini.requests
    assert "Alice <b>" not in request.prompt  # user text is neutralised inside the data fence
    assert "note 0 of Alice" in request.prompt


async def test_a_gemini_failure_for_one_user_does_not_stop_the_batch(clean, worker, settings, factory, redis, gemini):
    users = [await active_user(factory, f"User {i}") for i in range(3)]
    gemini.script(answer("this is not JSON"))
    batch = await finished_batch(settings.web_port, await request_batch(settings))
    assert (batch["total"], batch["succeeded"], batch["failed"], batch["skipped"]) == (3, 2, 1, 0)
    entries = [await cached(redis, u.id) for u in users]
    assert sum(e is not None for e in entries) == 2


async def test_server_errors_are_retried_on_another_key(clean, worker, settings, factory, redis, gemini):
    user = await active_user(factory, "Patient")
    gemini.script(unavailable())
    batch = await finished_batch(settings.web_port, await request_batch(settings))
    assert (batch["succeeded"], batch["failed"]) == (1, 0)
    first, second = gemini.requests
    assert (first.status, second.status) == (503, 200) and first.key != second.key
    assert await cached(redis, user.id) is not None


async def test_no_active_users_ends_the_batch_at_once(clean, worker, settings, factory, gemini):
    await active_user(factory, "Not yet", orders=4)
    batch = await finished_batch(settings.web_port, await request_batch(settings))
    assert (batch["total"], batch["succeeded"], batch["failed"], batch["skipped"]) == (0, 0, 0, 0)
    assert batch["status"] == "finished"
    assert gemini.requests == []


async def test_a_second_trigger_the_same_day_does_not_pay_twice(clean, worker, settings, factory, redis, gemini):
    users = [await active_user(factory, f"Daily {i}") for i in range(2)]
    first = await finished_batch(settings.web_port, await request_batch(settings))
    assert first["succeeded"] == 2
    second = await finished_batch(settings.web_port, await request_batch(settings))
    assert (second["total"], second["succeeded"], second["skipped"]) == (2, 0, 2)
    assert len(gemini.requests) == 2
    assert all([await cached(redis, u.id) for u in users])


async def test_other_task_types_are_ignored_and_bad_tasks_dead_lettered(clean, worker, settings, factory):
    known = await request_batch(settings, "send_newsletter")
    async with EventPublisher(settings) as publisher:
        await publisher.send_raw("daily-tasks", b"{broken", key=b"x")
        await publisher.send_raw("daily-tasks", b'{"type": 42}', key=b"y")
    await eventually(lambda: "daily-tasks: malformed event" in worker.logs())
    await asyncio.sleep(1.0)
    assert {b["batch_id"] for b in await batches(settings.web_port)} == known
    letters = await read_topic(settings.kafka_broker_url, settings.topic("dead-letters"))
    reasons = {v["payload"]: v["reason"] for _, v in letters if v["source_topic"].endswith("daily-tasks")}
    assert reasons["{broken"].startswith("not JSON")
    assert "'type' must be a non-empty string" in reasons['{"type": 42}']


async def test_batch_detail_view_and_progress_log(clean, worker, settings, factory):
    for i in range(3):
        await active_user(factory, f"Viewer {i}")
    batch = await finished_batch(settings.web_port, await request_batch(settings))
    import aiohttp

    url = f"http://127.0.0.1:{settings.web_port}/recommendations/batches/{batch['batch_id']}/"
    async with aiohttp.ClientSession(headers=AUTH) as http:
        async with http.get(url) as response:
            assert response.status == 200
            assert await response.json() == batch
        async with http.get(url.replace(batch["batch_id"], "no-such-batch")) as response:
            assert response.status == 404
    assert f"recommendations batch {batch['batch_id']}: 3 active users" in worker.logs()
    assert f"recommendations batch {batch['batch_id']}: 2/3 done" in worker.logs()
    assert f"recommendations batch {batch['batch_id']} finished: 3 users in" in worker.logs()


async def test_per_minute_rate_limit_cools_one_key_and_another_serves(clean, worker, settings, factory, redis, gemini):
    user = await active_user(factory, "Rate Limited")
    gemini.script(rate_limited("1s"))
    batch = await finished_batch(settings.web_port, await request_batch(settings))
    assert (batch["succeeded"], batch["failed"]) == (1, 0)
    first, second = gemini.requests
    assert (first.status, second.status) == (429, 200) and first.key != second.key
    assert await cached(redis, user.id) is not None
