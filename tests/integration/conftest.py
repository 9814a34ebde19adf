"""Fixtures of the integration tests: a real worker per module, fake Telegram, plain-JSON producer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.gemini import GeminiThread
from sandbox.gemini import run_in_thread as run_gemini
from sandbox.telegram import TelegramThread, run_in_thread
from streams.settings import Settings
from tests.conftest import FreshDatabase
from tests.integration.factory import Factory
from tests.integration.harness import (
    APP_IDS,
    OPS_TOKEN,
    WORKER_LOGS,
    WorkerProcess,
    free_port,
    log_excerpt,
    unique_name,
)
from tests.integration.kafka_io import delete_app_topics

BOT_TOKEN = "123456789:AAH-integration-SECRET-token-xyz"
TEST_STARTED = pytest.StashKey[float]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    item.stash[TEST_STARTED] = time.time()
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A failed test's report shows an excerpt of every worker log written while it ran."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    started = item.stash.get(TEST_STARTED, 0.0)
    for path in dict.fromkeys(WORKER_LOGS):
        if path.exists() and path.stat().st_mtime >= started:
            report.sections.append((f"worker log {path.name}", log_excerpt(path.read_text(errors="replace"))))


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_worker_log():
    """After the whole session: no worker log holds the bot token, a Gemini key or the operator's token."""
    yield
    from tests.integration.recommendations import KEYS

    secrets = [BOT_TOKEN, BOT_TOKEN.split(":", 1)[1], *KEYS, OPS_TOKEN]
    leaks = [
        (path.name, secret[:6] + "...")
        for path in WORKER_LOGS
        if path.exists()
        for secret in secrets
        if secret in path.read_text(errors="replace")
    ]
    assert not leaks, f"secrets in worker logs: {leaks}"


@pytest.fixture(scope="session", autouse=True)
def no_topics_left_behind(base_settings: Settings):
    """After the whole session: delete the topics the session's workers created."""
    yield
    asyncio.run(delete_app_topics(base_settings.kafka_broker_url, APP_IDS))


@pytest.fixture
async def factory(test_database_url: str):
    f = Factory(test_database_url)
    yield f
    await f.close()


@pytest.fixture(scope="module")
def own_database(services) -> Iterator[FreshDatabase]:
    """A fresh database of the module's own: its tests see only the users and orders they make."""
    db = FreshDatabase(unique_name("lunch_module").replace("-", "_")).create()
    yield db
    db.drop()


@pytest.fixture(scope="module")
def gemini() -> Iterator[GeminiThread]:
    """A fake Gemini API (the real REST path and JSON, scriptable answers) for the module."""
    fake = run_gemini()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def telegram() -> Iterator[TelegramThread]:
    """A fake Bot API enforcing Telegram's rate limits, so any 429 we did not script shows."""
    fake = run_in_thread(expected_token=BOT_TOKEN, enforce_limits=True)
    yield fake
    fake.stop()


def worker_env(database_url: str, **overrides: str) -> dict[str, str]:
    """Environment of a test worker: its own app id, topics and web port; fast retries; ``OPS_TOKEN`` set."""
    name = unique_name("test")
    env = {
        "APP_ID": name,
        "TOPIC_PREFIX": f"{name}.",
        "TOPIC_PARTITIONS": "4",
        "WEB_PORT": str(free_port()),
        "DATABASE_URL": database_url,
        "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
        "OPS_TOKEN": OPS_TOKEN,
        "NOTIFY_BACKOFF_BASE": "0.2",
        "NOTIFY_BACKOFF_MAX": "1",
        "NOTIFY_MAX_ATTEMPTS": "3",
        "TELEGRAM_TIMEOUT": "2",
        "BROKER_SESSION_TIMEOUT": "6",
        "STREAM_STALL_AFTER": "5",
    }
    env.update(overrides)
    return env


def start_worker(env: dict[str, str], tmp: Path) -> WorkerProcess:
    return WorkerProcess(env, tmp / f"{env['APP_ID']}.log").start()


@pytest.fixture(scope="module")
def worker(test_database_url: str, telegram: TelegramThread, tmp_path_factory) -> Iterator[WorkerProcess]:
    env = worker_env(test_database_url, TELEGRAM_API_BASE_URL=telegram.base_url)
    proc = start_worker(env, tmp_path_factory.mktemp("worker"))
    yield proc
    proc.stop()
    assert BOT_TOKEN not in proc.logs(), "the bot token leaked into the worker's log"


@pytest.fixture(scope="module")
def worker_settings(worker: WorkerProcess) -> Settings:
    return Settings.from_env(worker.env)
