"""Running it in production: the probes, promtool on a live /metrics, JSON logs, static group membership."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from streams.producers import EventPublisher
from streams.settings import Settings
from tests.integration.conftest import BOT_TOKEN, start_worker, worker_env
from tests.integration.harness import AUTH, REPO, WorkerProcess, eventually, free_port

pytestmark = pytest.mark.integration
DAY = datetime.now(UTC).date()  # deadline events must name a date near today (EVENT_DATE_DAYS_*)


@pytest.fixture(scope="module")
def json_worker(test_database_url, telegram, tmp_path_factory) -> Iterator[WorkerProcess]:
    env = worker_env(test_database_url, TELEGRAM_API_BASE_URL=telegram.base_url, LOG_FORMAT="json")
    proc = start_worker(env, tmp_path_factory.mktemp("json"))
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def stranded_worker(test_database_url, tmp_path_factory) -> Iterator[WorkerProcess]:
    """A worker whose PostgreSQL and Redis do not answer (nothing listens on port 1)."""
    env = worker_env(
        "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere", REDIS_URL="redis://127.0.0.1:1/0", LOG_FORMAT="text"
    )
    proc = start_worker(env, tmp_path_factory.mktemp("stranded"))
    yield proc
    proc.stop()


async def get(worker: WorkerProcess, path: str) -> tuple[int, dict | str]:
    url = f"http://127.0.0.1:{worker.env['WEB_PORT']}{path}"
    async with aiohttp.ClientSession(headers=AUTH) as http, http.get(url) as response:
        text = await response.text()
        return response.status, json.loads(text) if response.content_type == "application/json" else text


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_a_healthy_worker_is_live_and_ready(json_worker):
    assert await get(json_worker, "/livez") == (200, {"status": "ok", "reasons": []})
    assert await get(json_worker, "/readyz") == (200, {"status": "ok", "reasons": []})
    status, health = await get(json_worker, "/health")
    assert status == 200 and health["status"] == "ok"
    assert {name: check["ok"] for name, check in health["checks"].items()} == dict.fromkeys(
        ("kafka", "postgres", "redis"), True
    )
    assert health["live"]["status"] == health["ready"]["status"] == "ok"
    assert health["assigned_partitions"] > 0


async def test_dependencies_down_make_a_worker_unready_but_never_dead(stranded_worker):
    status, ready = await get(stranded_worker, "/readyz")
    assert status == 503
    assert {r.split(" ")[0] for r in ready["reasons"]} == {"postgres", "redis"}
    for _ in range(3):  # asked again and again: the probes are cached, the answer stays
        assert await get(stranded_worker, "/livez") == (200, {"status": "ok", "reasons": []})
    status, health = await get(stranded_worker, "/health")
    assert status == 503 and health["checks"]["kafka"]["ok"] and not health["checks"]["redis"]["ok"]
    _, text = await get(stranded_worker, "/metrics")
    metrics = samples(text)
    assert metrics[("lunch_worker_live", ())] == 1
    assert metrics[("lunch_worker_ready", ())] == 0
    assert metrics[("lunch_dependency_up", (("dependency", "redis"),))] == 0
    assert metrics[("lunch_dependency_up", (("dependency", "kafka"),))] == 1


def rule_metrics() -> set[str]:
    """The worker metrics the alert rules read (the `_total` of counters included)."""
    rules = (REPO / "docker" / "prometheus" / "alerts.yml").read_text()
    exprs = " ".join(r["expr"] for g in yaml.safe_load(rules)["groups"] for r in g["rules"])
    return set(re.findall(r"\blunch_\w+", exprs))


async def test_promtool_accepts_the_live_metrics_and_they_hold_what_the_rules_read(json_worker):
    status, text = await get(json_worker, "/metrics")
    assert status == 200
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed: run scripts/tools.sh (scripts/test.sh does)"
    check = [promtool, "check", "metrics"]
    done = await asyncio.to_thread(subprocess.run, check, input=text, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "lunch_streams_events_runtime_seconds_bucket" in text and "events_runtime_ms" not in text
    exposed = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    # Families without samples yet (no batch, no malformed event) still declare their names.
    exposed |= {f.name + ("_total" if f.type == "counter" else "") for f in text_string_to_metric_families(text)}
    assert rule_metrics() <= exposed


async def test_json_logs_one_object_per_line_with_the_digest_fields(json_worker, telegram, factory):
    cafe = await factory.cafe("Json Cafe", chat_id=-9_100_001)
    combo = await factory.combo(cafe)
    await factory.order(await factory.user("Logger"), combo, DAY)
    async with EventPublisher(Settings.from_env(json_worker.env)) as publisher:
        await publisher.deadline_passed(cafe.id, DAY)
    await eventually(lambda: [m for m in telegram.messages if m.chat_id == cafe.tg_chat_id and m.delivered])

    def sent_line() -> dict | None:
        lines = json_worker.logs().splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("{"))  # after Faust's banner
        parsed = [json.loads(line) for line in lines[start:] if line.strip()]  # every line is one JSON object
        assert all({"time", "level", "logger", "message"} <= set(p) for p in parsed)
        return next((p for p in parsed if p.get("cafe") == cafe.id and "sent to chat" in p["message"]), None)

    line = await eventually(sent_line)
    assert line["date"] == DAY.isoformat() and line["attempt"] == 1 and line["level"] == "INFO"
    assert line["logger"] == "agents.notifications.notifier"
    text = json_worker.logs()
    assert BOT_TOKEN not in text and BOT_TOKEN.split(":", 1)[1] not in text


async def test_a_static_member_restarted_within_the_session_timeout_causes_no_rebalance(
    test_database_url, telegram, tmp_path
):
    env = worker_env(test_database_url, TELEGRAM_API_BASE_URL=telegram.base_url, BROKER_SESSION_TIMEOUT="20")
    first = WorkerProcess(env, tmp_path / "first.log").start()
    second = WorkerProcess({**env, "WEB_PORT": str(free_port())}, tmp_path / "second.log")
    try:
        second.start()
        assert first.env["WORKER_INSTANCE_ID"] != second.env["WORKER_INSTANCE_ID"]
        await eventually(lambda: first.logs().count("Worker ready") >= 2, 60)  # the second's join
        ready_before = first.logs().count("Worker ready")
        second.stop()
        second.start()  # same instance id and web port, well within the 20 s session timeout
        await eventually(lambda: second.logs(since_start=True).count("Worker ready") >= 1, 60)
        status, _ = await get(second, "/readyz")
        assert status == 200
        assert first.logs().count("Worker ready") == ready_before  # the first worker never rebalanced
    finally:
        second.stop()
        first.stop()
