"""Two GeminiRecommenders (two workers) sharing key states through the real Redis, against the sandbox Gemini."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import pytest
from redis.asyncio import Redis

from agents.recommendations.gemini import GeminiRecommender
from agents.recommendations.keypool import DISABLE_FOR, KeyState, Verdict, next_quota_reset
from agents.recommendations.shared_keys import PACE_HEADROOM, SharedKeyStates
from sandbox import gemini as sandbox
from streams.redaction import key_fingerprint
from tests.integration.harness import free_port, unique_name

KEY_A = "AIzaSyA-shared-secret-key-aaaaaaaaaaaa"
KEY_B = "AIzaSyB-shared-secret-key-bbbbbbbbbbbb"
FP_A, FP_B = key_fingerprint(KEY_A), key_fingerprint(KEY_B)
MODEL = "gemini-test-lite"
PROMPT = 'Recommend a lunch. <<<USER_DATA>>>\n{"name": "Ann"}\n<<<END_USER_DATA>>>'
REDIS_URL = "redis://127.0.0.1:6379/14"  # no test flushes it; each test has its own key prefix
BROKER_LOG = "agents.recommendations.key_broker"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning"),
]


@pytest.fixture
async def redis(services):
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(redis):
    name = f"{unique_name('test')}:gemini:key:"
    yield name
    if mine := [key async for key in redis.scan_iter(match=name + "*")]:
        await redis.delete(*mine)


@pytest.fixture
async def fake():
    async with sandbox.SandboxGemini() as server:
        yield server


@pytest.fixture
async def make(fake, redis, prefix):
    made: list[GeminiRecommender] = []

    def factory(client: Redis | None = redis, **kw) -> GeminiRecommender:
        options = {"timeout_s": 5.0, "max_wait_s": 1.0, "server_backoff_base": 0.01, "shared_prefix": prefix} | kw
        rec = GeminiRecommender(api_keys=(KEY_A, KEY_B), base_url=fake.base_url, model=MODEL, redis=client, **options)
        made.append(rec)
        return rec

    yield factory
    for rec in made:
        await rec.close()


def served_by(fake) -> list[str]:
    return [r.key for r in fake.requests]


async def server_time(redis: Redis) -> float:
    seconds, micros = await redis.time()
    return seconds + micros / 1e6


@pytest.mark.parametrize(
    ("reply", "state"),
    [
        (sandbox.rate_limited("30s"), "cooling"),
        (sandbox.rate_limited("20s", per_day=True), "parked"),
        (sandbox.invalid_key(), "disabled"),
    ],
)
async def test_a_key_one_worker_learns_is_blocked_the_other_does_not_send_to(fake, make, redis, prefix, reply, state):
    one, two = make(), make()
    fake.script(reply, key=KEY_A)
    assert await one.recommend(PROMPT)
    assert served_by(fake) == [FP_A, FP_B]
    for _ in range(4):
        assert await two.recommend(PROMPT)
    assert served_by(fake)[2:] == [FP_B] * 4

    now = await server_time(redis)
    expected = {"cooling": 30.0, "parked": next_quota_reset(now) - now + 60, "disabled": DISABLE_FOR}[state]
    stats = two.key_stats()[FP_A]
    assert stats["state"] == state and stats["ok"] == 0  # learnt from Redis, not from a request
    assert stats["ready_in"] == pytest.approx(expected, abs=2.0)
    assert await redis.pttl(prefix + FP_A) / 1000 == pytest.approx(expected, abs=2.0)  # gone once it says nothing
    names = [key async for key in redis.scan_iter(match=prefix + "*")]
    fields = await redis.hgetall(prefix + FP_A)
    assert names == [f"{prefix}{FP_A}".encode()]  # by fingerprint; the unpaced key B left nothing
    assert KEY_A.encode() not in b" ".join([*names, *fields, *fields.values()])


async def test_a_block_only_lengthens_and_disabling_keeps_it(redis, prefix):
    states = SharedKeyStates(redis, prefix=prefix)
    await states.report(Verdict(FP_A, KeyState.PARKED, 3600.0))
    await states.report(Verdict(FP_A, KeyState.COOLING, 5.0))  # another worker's shorter cooldown
    await states.report(Verdict(FP_A, KeyState.DISABLED, 60.0))
    pick = await states.acquire([FP_A, FP_B], [0, 1])
    assert pick.index == 1
    view = pick.views[0]
    assert view.parked and view.blocked_for == pytest.approx(3600.0, abs=1.0)
    assert view.disabled_for == pytest.approx(60.0, abs=1.0)
    assert await redis.pttl(prefix + FP_A) / 1000 == pytest.approx(3600.0, abs=1.0)
    assert await redis.pttl(prefix + FP_B) == -2  # unpaced use of a key leaves nothing behind


async def test_pacing_at_the_sandboxs_rate_draws_no_429(fake, make):
    fake.rpm_limit, fake.rpm_window = 10, 2.0  # 300 requests a minute per key, over a sliding window
    workers = [make(key_rpm=300, max_wait_s=10.0) for _ in range(2)]
    started = time.monotonic()
    await asyncio.gather(*(w.recommend(PROMPT) for w in workers for _ in range(12)))
    elapsed = time.monotonic() - started
    assert [r.status for r in fake.requests] == [200] * 24
    assert sorted(served_by(fake)) == sorted([FP_A, FP_B] * 12)
    assert elapsed >= 11 * 0.2 * (1 + PACE_HEADROOM)  # each key's 12 requests, one paced slot apart


async def test_the_same_load_unpaced_does_draw_429(fake, make):
    fake.rpm_limit, fake.rpm_window = 10, 2.0
    workers = [make(max_wait_s=10.0) for _ in range(2)]
    await asyncio.gather(*(w.recommend(PROMPT) for w in workers for _ in range(12)))
    assert any(r.status == 429 for r in fake.requests)


class Gate:
    """A TCP port in front of Redis: closed (refused), open (forwarding) or mute (accepts, never answers)."""

    def __init__(self) -> None:
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._clients: list[Redis] = []

    def client(self) -> Redis:
        """A client of the test database through this gate (closed with it)."""
        self._clients.append(Redis.from_url(f"redis://127.0.0.1:{self.port}/14"))
        return self._clients[-1]

    async def open(self, *, mute: bool = False) -> None:
        self._server = await asyncio.start_server(self._mute if mute else self._forward, "127.0.0.1", self.port)

    async def close(self) -> None:
        for client in self._clients:
            await client.aclose()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _mute(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass
        writer.close()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", 6379)
        pipes = [asyncio.create_task(self._pipe(reader, up_writer)), asyncio.create_task(self._pipe(up_reader, writer))]
        self._tasks.update(pipes)
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for task in pipes:
            task.cancel()
        writer.close()
        up_writer.close()

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()


@pytest.fixture
async def gate():
    g = Gate()
    yield g
    await g.close()


def broker_records(caplog, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == BROKER_LOG and r.levelno == level]


async def test_redis_unreachable_falls_back_and_still_recommends(fake, make, gate, caplog):
    caplog.set_level(logging.INFO, logger=BROKER_LOG)
    gemini = make(gate.client(), shared_retry_s=60.0)  # nothing listens there
    fake.script(sandbox.rate_limited("30s"), key=KEY_A)
    for _ in range(3):
        assert await gemini.recommend(PROMPT)
    assert served_by(fake) == [FP_A, FP_B, FP_B, FP_B]  # this process still learns on its own
    assert gemini.key_stats()[FP_A]["state"] == "cooling"
    assert gemini.fallbacks == 4
    [warning] = broker_records(caplog, logging.WARNING)
    assert warning.startswith("Redis failed (") and "this worker's own" in warning
    assert KEY_A not in caplog.text and KEY_B not in caplog.text


async def test_a_redis_that_never_answers_costs_one_short_timeout(fake, make, gate, caplog):
    await gate.open(mute=True)
    gemini = make(gate.client(), shared_retry_s=60.0)
    started = time.monotonic()
    for _ in range(3):
        assert await gemini.recommend(PROMPT)
    assert time.monotonic() - started < 1.5  # one 0.5 s timeout, then no more tries for a while
    assert gemini.fallbacks == 3
    [warning] = broker_records(caplog, logging.WARNING)
    assert warning.startswith("Redis failed (TimeoutError)")


async def test_redis_back_is_noticed_once_and_shared_again(fake, make, gate, caplog):
    caplog.set_level(logging.INFO, logger=BROKER_LOG)
    one = make(gate.client(), shared_retry_s=0.2)
    two = make()
    assert await one.recommend(PROMPT)
    assert one.fallbacks == 1
    await gate.open()
    assert await one.recommend(PROMPT)
    assert one.fallbacks == 2  # not retried before shared_retry_s
    await asyncio.sleep(0.25)
    fake.script(sandbox.rate_limited("30s"), key=KEY_A)
    for _ in range(2):
        assert await one.recommend(PROMPT)
    assert one.fallbacks == 2
    assert [r.status for r in fake.requests][2:] == [429, 200, 200]
    for _ in range(2):
        assert await two.recommend(PROMPT)
    assert served_by(fake)[-2:] == [FP_B, FP_B]  # what one learnt after Redis came back, two knows
    assert len(broker_records(caplog, logging.WARNING)) == 1
    assert broker_records(caplog, logging.INFO) == ["Redis is back: Gemini key states are shared by all workers again"]
