"""The web surface of real workers reveals nothing without OPS_TOKEN.

Every route of the app, enumerated from its router (a subprocess imports the app with the worker's
environment and lists ``app.web``'s aiohttp routes), is asked without a token, with a wrong one and with
the right one: only the probes and metrics answer 200 without it. Then a fleet of two: a session signed in
on one worker is good on the other, the console and ``app.table_route`` reach the other worker with the
fleet's token, and failed attempts spread over both are throttled together. A worker without OPS_TOKEN has
those routes off; a short OPS_TOKEN stops the start with one line.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import Iterator

import aiohttp
import pytest

from streams.settings import Settings
from tests.integration.conftest import start_worker, worker_env
from tests.integration.harness import AUTH, OPS_TOKEN, REPO, WorkerProcess, eventually, free_port
from tests.integration.kafka_io import group_state

pytestmark = pytest.mark.integration

OPEN = {"/livez", "/readyz", "/metrics"}
WRONG = {"Authorization": "Bearer " + "a-wrong-GUESS-" * 3}
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
LIST_ROUTES = """
import json
from streams.app import app
app.finalize()
app.discover()
app.web.init_server()
print(json.dumps([[r.method, r.resource.canonical] for r in app.web.web_app.router.routes()]))
"""


def routes(worker: WorkerProcess) -> list[tuple[str, str]]:
    """Every (method, path) the worker's web app serves, from its aiohttp router; ``{param}`` filled in."""
    done = subprocess.run(
        [sys.executable, "-c", LIST_ROUTES], cwd=REPO, env=worker.env, capture_output=True, text=True, check=True
    )
    listed = json.loads(done.stdout.strip().splitlines()[-1])
    return [(method, re.sub(r"\{[^}]+\}", "x", path)) for method, path in listed]


async def ask(
    worker: WorkerProcess, method: str, path: str, *, source: str = "127.0.0.1", **kwargs
) -> aiohttp.ClientResponse:
    """One request to ``worker`` from the loopback address ``source`` (each address has its own throttle)."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector) as http:
        url = f"http://127.0.0.1:{worker.env['WEB_PORT']}{path}"
        async with http.request(method, url, allow_redirects=False, **kwargs) as response:
            await response.read()
            return response


@pytest.fixture(scope="module")
def fleet(test_database_url, telegram, tmp_path_factory) -> Iterator[list[WorkerProcess]]:
    """Two workers of one app (one OPS_TOKEN), settled: both in the group and ready."""
    env = worker_env(test_database_url, TELEGRAM_API_BASE_URL=telegram.base_url)
    logs = tmp_path_factory.mktemp("web-fleet")
    workers = [start_worker(env, logs)]
    try:
        second = {**env, "WEB_PORT": str(free_port())}
        workers.append(WorkerProcess(second, logs / "second.log").start())
        settings = Settings.from_env(env)

        async def settled() -> bool:
            state, members = await group_state(settings.kafka_broker_url, settings.app_id)
            ready = [(await ask(w, "GET", "/readyz")).status == 200 for w in workers]
            return state == "Stable" and members == 2 and all(ready)

        asyncio.run(eventually(settled, 90, 0.5))
        yield workers
    finally:
        for worker in workers:
            worker.stop()
    for worker in workers:
        assert OPS_TOKEN not in worker.logs(), "OPS_TOKEN leaked into a worker's log"


async def test_every_route_answers_only_with_the_token(fleet):
    worker = fleet[0]
    listed = routes(worker)
    paths = {path for _, path in listed}
    assert OPEN | {"/ops/", "/health", "/notifications/", "/signin/"} <= paths
    assert not any(p.startswith(("/router", "/table", "/assignment", "/graph")) for p in paths)  # Faust's are off
    for i, (method, path) in enumerate(listed):
        data = {"dry_run": "1"} if method == "POST" else None
        anonymous = await ask(worker, method, path, data=data)
        # A distinct loopback address per wrong guess: each is answered 401, none is throttled yet.
        wrong = await ask(worker, method, path, data=data, headers=WRONG, source=f"127.0.{1 + i // 200}.{1 + i % 200}")
        right = await ask(worker, method, path, data=data, headers=AUTH)
        foreign = await ask(worker, method, path, data=data, headers={**AUTH, "Host": "rebound.evil.example"})
        where = f"{method} {path}"
        if path in OPEN:
            assert (anonymous.status, wrong.status, right.status, foreign.status) == (200, 200, 200, 200), where
            continue
        assert anonymous.status == 401, where
        assert anonymous.headers["WWW-Authenticate"].startswith("Bearer"), where
        assert wrong.status == 401, where
        assert foreign.status == 421, where
        if path == "/signin/":  # the form itself (401 until a browser signs in): a bearer token signs no browser in
            assert right.status == 401 and (method == "HEAD" or 'name="token"' in await right.text()), where
        elif path == "/recommendations/batches/x/":
            assert right.status == 404 and (method == "HEAD" or "no such batch" in await right.text()), where  # its own
        elif method == "HEAD" and ("GET", path) not in listed:  # a POST-only view: nothing to HEAD
            assert right.status == 405, where
        else:
            assert right.status in (200, 303), where
        for response in (anonymous, wrong, right):
            assert {k: response.headers.get(k) for k in SECURITY_HEADERS} == SECURITY_HEADERS, where
            assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"], where
        assert OPS_TOKEN not in await right.text(), where


async def test_a_browser_is_sent_to_the_sign_in_form(fleet):
    response = await ask(fleet[0], "GET", "/ops/?day=2026-11-18", headers={"Accept": "text/html"})
    assert response.status == 303 and response.headers["Location"] == "/signin/?next=/ops/?day%3D2026-11-18"


async def sign_in(worker: WorkerProcess) -> tuple[str, str]:
    """Sign in through the form like a browser; the session cookie's name and value."""
    form = await ask(worker, "GET", "/signin/?next=/ops/")
    page = await form.text()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    [(nonce_name, nonce)] = [(name, morsel.value) for name, morsel in form.cookies.items()]
    fields = {"token": OPS_TOKEN, "csrf": csrf, "next": "/ops/"}
    signed = await ask(worker, "POST", "/signin/", data=fields, cookies={nonce_name: nonce})
    assert signed.status == 303 and signed.headers["Location"] == "/ops/"
    [(name, morsel)] = [(n, m) for n, m in signed.cookies.items() if m.value]
    assert morsel["httponly"] and morsel["samesite"] == "Strict"
    return name, morsel.value


async def test_a_session_from_one_worker_is_good_on_the_other_and_they_ask_each_other(fleet):
    first, second = fleet
    name, session = await sign_in(first)
    page = await ask(second, "GET", "/ops/", cookies={name: session})
    text = await page.text()
    assert page.status == 200 and "Digests of" in text
    assert "did not answer" not in text and "assignment unknown" not in text  # the other worker answered it
    csrf = re.search(r'name="csrf" value="([^"]+)"', text).group(1)
    assert (await ask(second, "POST", "/ops/replay/", data={"dry_run": "1"}, cookies={name: session})).status == 403
    preview = await ask(second, "POST", "/ops/replay/", data={"dry_run": "1", "csrf": csrf}, cookies={name: session})
    assert preview.status == 200 and "Dry run" in await preview.text()
    for worker in fleet:  # one of them owns the batch table: the other forwards (app.table_route) with the token
        batches = await ask(worker, "GET", "/recommendations/batches/", cookies={name: session})
        assert batches.status == 200 and "batches" in json.loads(await batches.text())


async def test_failed_attempts_on_either_worker_are_throttled_together(fleet):
    source = "127.0.9.9"
    statuses = [(await ask(fleet[i % 2], "GET", "/health", headers=WRONG, source=source)).status for i in range(10)]
    assert statuses == [401] * 10
    for worker in fleet:  # past the limit on both: even the right token is not looked at
        refused = await ask(worker, "GET", "/health", headers=AUTH, source=source)
        assert refused.status == 429 and 1 <= int(refused.headers["Retry-After"]) <= 60
    assert (await ask(fleet[0], "GET", "/health", headers=AUTH)).status == 200  # another address is not refused
    logs = fleet[0].logs() + fleet[1].logs()
    assert f"web: wrong OPS_TOKEN (Authorization header) from {source} for GET /health" in logs
    assert "10 failed attempt(s) in 60 s; refused for 60 s" in logs
    assert "a-wrong-GUESS-" not in logs


@pytest.fixture(scope="module")
def tokenless(test_database_url, telegram, tmp_path_factory) -> Iterator[WorkerProcess]:
    env = worker_env(test_database_url, TELEGRAM_API_BASE_URL=telegram.base_url, OPS_TOKEN="")
    proc = start_worker(env, tmp_path_factory.mktemp("tokenless"))
    yield proc
    proc.stop()


async def test_without_ops_token_every_route_but_the_probes_and_metrics_is_off(tokenless):
    for method, path in routes(tokenless):
        for headers in (None, AUTH):
            response = await ask(tokenless, method, path, headers=headers)
            expected = 200 if path in OPEN else 404
            assert response.status == expected, f"{method} {path}"


def test_a_short_ops_token_stops_the_start_with_one_line(test_database_url, tmp_path):
    env = WorkerProcess(worker_env(test_database_url, OPS_TOKEN="x" * 31), tmp_path / "short.log").env
    done = subprocess.run(
        [sys.executable, "-m", "faust", "-A", "streams.app", "worker"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "lunch-streams: invalid configuration: OPS_TOKEN must be at least 32 characters "
        "(e.g. openssl rand -hex 24) (value not shown)"
    ]
