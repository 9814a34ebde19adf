"""A secured production: SASL_SSL with SCRAM-SHA-512, TLS verified against a private CA, ACLs, Redis over TLS.

The broker is ``kafka-secure`` of ``scripts/services.sh`` (StandardAuthorizer, ``scripts/kafka/acls.txt``): the
worker's principal may use topics and groups starting with ``lunch``, the backend's may only write
``lunch-secure.deadline-passed`` and ``lunch-secure.daily-tasks``. So every worker here runs with
``TOPIC_PREFIX=lunch-secure.``; the module deletes those topics (as the admin) before and after it runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import TopicAuthorizationFailedError
from redis.asyncio import Redis

from agents.console.sources import read_dead_letters
from streams.kafka_security import kafka_options
from streams.producers import EventPublisher
from streams.redis_connection import redis_client
from streams.settings import Settings
from tests.integration.conftest import start_worker, worker_env
from tests.integration.factory import Factory
from tests.integration.harness import REPO, WorkerProcess, eventually, unique_name
from tests.integration.recommendations import KEYS, ZONE, active_user, today

pytestmark = pytest.mark.integration

SERVICES_HOME = Path(os.environ.get("LUNCH_SERVICES_HOME") or Path.home() / ".cache" / "lunch-streams")
PREFIX = "lunch-secure."


def client_env(service: str) -> dict[str, str]:
    path = SERVICES_HOME / service / "client.env"
    if not path.exists():
        pytest.fail(f"{path} is missing: run scripts/services.sh start (it starts {service})")
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


@pytest.fixture(scope="module")
def kafka_env() -> dict[str, str]:
    return client_env("kafka-secure")


@pytest.fixture(scope="module")
def redis_env() -> dict[str, str]:
    return client_env("redis-tls")


def sasl(kafka: dict[str, str], who: str, **overrides: str) -> dict[str, str]:
    """The settings' variables of principal ``who`` on the SASL_SSL listener."""
    return {
        "KAFKA_BROKER_URL": f"kafka://{kafka['SECURE_KAFKA_SASL_BOOTSTRAP']}",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": kafka["SECURE_KAFKA_SASL_MECHANISM"],
        "KAFKA_SASL_USERNAME": kafka[f"SECURE_KAFKA_{who.upper()}_USER"],
        "KAFKA_SASL_PASSWORD": kafka[f"SECURE_KAFKA_{who.upper()}_PASSWORD"],
        "KAFKA_SSL_CA_FILE": kafka["SECURE_KAFKA_CA_FILE"],
        "TOPIC_PREFIX": PREFIX,
        **overrides,
    }


async def delete_secure_topics(admin_settings: Settings) -> None:
    """Delete every ``lunch-secure`` topic and wait until the broker no longer lists them."""
    admin = AIOKafkaAdminClient(**kafka_options(admin_settings))
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith("lunch-secure")]
        if doomed:
            await admin.delete_topics(doomed, timeout_ms=60_000)
        deadline = time.monotonic() + 60
        while any(t.startswith("lunch-secure") for t in await admin.list_topics()):
            assert time.monotonic() < deadline, "lunch-secure topics still listed 60 s after their deletion"
            await asyncio.sleep(0.5)
    finally:
        await admin.close()


@pytest.fixture(scope="module")
def clean_broker(kafka_env) -> Iterator[None]:
    admin = Settings.from_env(sasl(kafka_env, "admin"))
    asyncio.run(delete_secure_topics(admin))
    yield
    asyncio.run(delete_secure_topics(admin))


@pytest.fixture(scope="module")
def secure_worker(
    clean_broker, kafka_env, redis_env, own_database, telegram, gemini, tmp_path_factory
) -> Iterator[WorkerProcess]:
    """A worker on SASL_SSL + SCRAM under the worker's ACLs, with Redis over TLS as an ACL user."""
    env = worker_env(
        own_database.url,
        **sasl(kafka_env, "worker"),
        APP_ID=unique_name("lunch-secure"),
        TELEGRAM_API_BASE_URL=telegram.base_url,
        GEMINI_API_KEYS=",".join(KEYS),
        GEMINI_API_BASE_URL=gemini.base_url,
        TIMEZONE=ZONE,
        REDIS_URL=redis_env["SECURE_REDIS_URL"],
        REDIS_SSL_CA_FILE=redis_env["SECURE_REDIS_CA_FILE"],
    )
    proc = start_worker(env, tmp_path_factory.mktemp("secure"))
    yield proc
    proc.stop()
    logs = proc.logs()
    for secret in (kafka_env["SECURE_KAFKA_WORKER_PASSWORD"], redis_env["SECURE_REDIS_PASSWORD"]):
        assert secret not in logs, "a password leaked into the worker's log"


@pytest.fixture(scope="module")
def backend(kafka_env) -> Settings:
    """The backend's settings: its own principal, which may only write the two event topics."""
    return Settings.from_env(sasl(kafka_env, "backend"))


@pytest.fixture
async def factory(own_database):
    f = Factory(own_database.url)
    yield f
    await f.close()


async def test_a_worker_under_acls_delivers_a_digest_published_by_the_backend(
    secure_worker, backend, factory, telegram
):
    assert "kafka: connecting with SASL_SSL, SCRAM-SHA-512 as 'worker', CA" in secure_worker.logs()
    cafe = await factory.cafe("Secure Cafe", chat_id=-9_300_001)
    combo = await factory.combo(cafe, "Business lunch", "450.00")
    await factory.order(await factory.user("Ada"), combo, today())
    async with EventPublisher(backend) as publisher:
        await publisher.deadline_passed(cafe.id, today())
    [message] = await eventually(
        lambda: [m for m in telegram.messages if m.chat_id == cafe.tg_chat_id and m.delivered], 60
    )
    assert "Secure Cafe" in message.text and "Ada" in message.text


async def test_a_recommendation_batch_runs_and_caches_in_redis_over_tls(secure_worker, backend, factory, redis_env):
    user = await active_user(factory, "Secure Sam")
    async with EventPublisher(backend) as publisher:
        await publisher.daily_task("generate_recommendations")
    redis = redis_client(Settings.from_env(secure_worker.env))
    try:
        raw = await eventually(lambda: redis.get(f"recommendations:user:{user.id}"), 60)
        assert set(json.loads(raw)) == {"summary", "tips", "generated_at"}
        assert await redis.ttl(f"recommendations:user:{user.id}") > 0
    finally:
        await redis.aclose()


async def test_the_backend_may_not_write_the_workers_topics(secure_worker, backend):
    producer = AIOKafkaProducer(**kafka_options(backend), acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(backend.topic("deadline-passed"), b'{"cafe_id": 1, "date": "2000-01-01"}')
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait(backend.topic("digest-retries"), b"{}")
    finally:
        await producer.stop()


async def test_dead_letters_are_read_and_replayed_over_tls(secure_worker, backend):
    async with EventPublisher(backend) as publisher:
        await publisher.send_raw("deadline-passed", b"not json at all", key=b"77")
    settings = Settings.from_env(secure_worker.env)

    async def the_letter() -> list:
        records, _ = await read_dead_letters(settings)  # what the console reads
        return [letter for _, _, letter in records if letter.get("payload") == "not json at all"]

    [letter] = await eventually(the_letter, 60)
    assert letter["source_topic"] == settings.topic("deadline-passed")
    command = [sys.executable, "-m", "faust", "-A", "streams.app", "replay-dead-letters", "--dry-run"]
    done = await asyncio.to_thread(
        subprocess.run, command, cwd=REPO, env=secure_worker.env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    assert counts["replayed"] + counts["unreplayable"] >= 1


def failed_start(env: dict[str, str], tmp: Path) -> tuple[int, str, float]:
    """Start a worker that must not get in: its exit status, its output, and how long it took."""
    started = time.monotonic()
    proc = WorkerProcess(env, tmp / f"{env['APP_ID']}.log")
    with pytest.raises(RuntimeError, match="worker exited with"):
        proc.start(timeout=60)
    return proc.proc.returncode, proc.logs(), time.monotonic() - started


def refusal_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "CRITICAL" in line or "Traceback" in line]


@pytest.mark.parametrize("case", ["wrong password", "untrusted CA"])
def test_a_bad_credential_stops_the_worker_within_a_minute_with_one_line(
    case, clean_broker, kafka_env, test_database_url, tmp_path
):
    bad = "not-the-password-" + "x" * 16
    if case == "wrong password":
        overrides = {"KAFKA_SASL_PASSWORD": bad}
        expected = "refused the SASL SCRAM-SHA-512 login of 'worker' (wrong user name or password)"
    else:
        overrides = {"KAFKA_SSL_CA_FILE": kafka_env["SECURE_KAFKA_UNTRUSTED_CA_FILE"]}
        expected = "kafka: the certificate of 127.0.0.1:9094 is not trusted ("
    env = worker_env(test_database_url, **sasl(kafka_env, "worker", **overrides), APP_ID=unique_name("lunch-secure"))
    status, log, took = failed_start(env, tmp_path)
    assert status == 3 and took < 60
    [line] = refusal_lines(log)
    assert expected in line, line
    assert bad not in log and kafka_env["SECURE_KAFKA_WORKER_PASSWORD"] not in log


def test_a_worker_joins_over_mutual_tls_as_its_certificates_principal(
    clean_broker, kafka_env, test_database_url, tmp_path
):
    env = worker_env(
        test_database_url,
        KAFKA_BROKER_URL=f"kafka://{kafka_env['SECURE_KAFKA_MTLS_BOOTSTRAP']}",
        KAFKA_SECURITY_PROTOCOL="SSL",
        KAFKA_SSL_CA_FILE=kafka_env["SECURE_KAFKA_CA_FILE"],
        KAFKA_SSL_CERT_FILE=kafka_env["SECURE_KAFKA_CLIENT_CERT_FILE"],
        KAFKA_SSL_KEY_FILE=kafka_env["SECURE_KAFKA_CLIENT_KEY_FILE"],
        TOPIC_PREFIX=PREFIX + "mtls.",
        APP_ID=unique_name("lunch-secure-mtls"),
    )
    proc = start_worker(env, tmp_path)
    try:
        assert "kafka: connecting with SSL, CA" in proc.logs()
    finally:
        proc.stop()
    untrusted = {
        **env,
        "KAFKA_SSL_CERT_FILE": kafka_env["SECURE_KAFKA_UNTRUSTED_CLIENT_CERT_FILE"],
        "KAFKA_SSL_KEY_FILE": kafka_env["SECURE_KAFKA_UNTRUSTED_CLIENT_KEY_FILE"],
        "APP_ID": unique_name("lunch-secure-mtls"),
    }
    status, log, took = failed_start(untrusted, tmp_path)
    assert status == 3 and took < 60
    [line] = refusal_lines(log)
    assert "does not accept this worker's client certificate" in line, line


async def test_redis_refuses_keys_outside_the_workers_acl(redis_env):
    redis = Redis.from_url(redis_env["SECURE_REDIS_URL"], ssl_ca_certs=redis_env["SECURE_REDIS_CA_FILE"])
    try:
        assert await redis.set("lunch:secure-check", "1", ex=10)
        with pytest.raises(Exception, match="no permissions"):
            await redis.set("elsewhere:secure-check", "1", ex=10)
    finally:
        await redis.aclose()
