"""The web guard: stateless sessions and CSRF tokens, the throttle (shared and fallback), the middleware's answers."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.exceptions import ConnectionError as RedisConnectionError

from streams.settings import Settings
from streams.web_auth import (
    Credentials,
    FailureLimit,
    LocalFailures,
    bearer_token,
    host_name,
    safe_next,
    wants_html,
)
from streams.web_security import AUTH, SIGN_IN, SIGN_OUT, WebGuard
from streams.web_throttle import FailedAttempts

TOKEN = "t" * 16 + "-the-operators-SECRET-token"
NOW = 1_795_000_000.0


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- credentials -----------------------------------------------------------------------------------


def test_a_session_is_good_on_every_worker_sharing_the_token_until_it_expires():
    issuer, other_worker = Credentials(TOKEN, lifetime=3600), Credentials(TOKEN, lifetime=3600)
    cookie = issuer.issue(NOW)
    assert other_worker.session_valid(cookie, NOW + 1)
    assert other_worker.session_valid(cookie, NOW - 30)  # its clock a little behind the issuer's
    assert not other_worker.session_valid(cookie, NOW - 3600)  # issued "in the future": forged or a broken clock
    assert not other_worker.session_valid(cookie, NOW + 3600)  # expired
    assert not Credentials(TOKEN + "x").session_valid(cookie, NOW)  # OPS_TOKEN changed: everyone signs in again


@pytest.mark.parametrize(
    "cookie", ["", "garbage", "1.2", "x.nonce.mac", f"{int(NOW)}.nonce.{'0' * 64}", f"{int(NOW)}..abc", "a.b.c.d"]
)
def test_a_forged_or_garbled_session_is_refused(cookie):
    assert not Credentials(TOKEN).session_valid(cookie, NOW)


def test_a_tampered_issue_time_breaks_the_signature():
    credentials = Credentials(TOKEN)
    issued, nonce, mac = credentials.issue(NOW).split(".")
    assert not credentials.session_valid(f"{int(issued) + 86400}.{nonce}.{mac}", NOW + 86400)


def test_csrf_tokens_are_bound_to_their_session():
    credentials = Credentials(TOKEN)
    one, two = credentials.issue(NOW), credentials.issue(NOW)
    assert one != two
    assert credentials.csrf_valid(one, credentials.csrf(one))
    assert not credentials.csrf_valid(two, credentials.csrf(one))
    assert not credentials.csrf_valid(one, None) and not credentials.csrf_valid(None, "x")


def test_the_token_check_and_no_secret_in_repr():
    credentials = Credentials(TOKEN)
    assert credentials.token_matches(TOKEN)
    assert not any(credentials.token_matches(given) for given in (None, "", TOKEN[:-1], TOKEN + " ", TOKEN.upper()))
    assert TOKEN not in repr(credentials) and credentials.authorization() == f"Bearer {TOKEN}"


def test_request_parsing():
    assert bearer_token(f"Bearer {TOKEN}") == bearer_token(f"bearer  {TOKEN} ") == TOKEN
    assert bearer_token(None) is bearer_token("Basic abc") is bearer_token("Bearer ") is None
    assert host_name("LocalHost:6066") == "localhost" and host_name("127.0.0.1") == "127.0.0.1"
    assert host_name("[::1]:6066") == "::1" and host_name("example.com.") == "example.com"
    assert host_name(None) == host_name("") == host_name("[broken") == ""
    assert wants_html("GET", "text/html,application/xhtml+xml") and not wants_html("GET", "application/json")
    assert not wants_html("POST", "text/html")


@pytest.mark.parametrize(
    ("target", "expected"),
    [("/ops/?day=2026-11-18", "/ops/?day=2026-11-18"), (None, "/ops/"), ("//evil.example/", "/ops/"),
     ("https://evil.example/", "/ops/"), ("/\\evil.example", "/ops/"), ("ops/", "/ops/"), ("/a\nb", "/ops/")],
)  # fmt: skip
def test_after_signing_in_only_a_path_of_this_server(target, expected):
    assert safe_next(target) == expected


def test_local_failures_refuse_past_the_limit_until_the_window_ends():
    failures = LocalFailures(FailureLimit(max_failures=3, window=60))
    assert [failures.record("10.0.0.1", NOW + i) for i in range(3)] == [1, 2, 3]
    assert failures.retry_after("10.0.0.1", NOW + 10) == pytest.approx(50)
    assert failures.retry_after("10.0.0.2", NOW + 10) is None  # another address
    assert failures.retry_after("10.0.0.1", NOW + 60) is None
    assert failures.record("10.0.0.1", NOW + 61) == 1


# -- the fleet's throttle --------------------------------------------------------------------------


class FakeRedis:
    """The few commands the throttle uses, for any number of workers; ``down`` makes every call fail."""

    def __init__(self, clock: Clock) -> None:
        self.clock, self.values, self.expiry, self.down = clock, {}, {}, False

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        return FakePipeline(self)


class FakePipeline:
    def __init__(self, redis: FakeRedis) -> None:
        self.redis, self.calls = redis, []

    async def __aenter__(self) -> FakePipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: self.calls.append((name, args, kwargs))

    async def execute(self) -> list:
        redis = self.redis
        if redis.down:
            raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379")
        for key in [k for k, end in redis.expiry.items() if end <= redis.clock()]:
            redis.values.pop(key), redis.expiry.pop(key)
        results = []
        for name, args, kwargs in self.calls:
            key = args[0]
            if name == "set":
                if key not in redis.values:
                    redis.values[key], redis.expiry[key] = args[1], redis.clock() + kwargs["ex"]
                results.append(True)
            elif name == "incr":
                redis.values[key] = int(redis.values.get(key, 0)) + 1
                results.append(redis.values[key])
            elif name == "get":
                results.append(None if key not in redis.values else str(redis.values[key]).encode())
            elif name == "pttl":
                results.append(int((redis.expiry[key] - redis.clock()) * 1000) if key in redis.expiry else -2)
        return results


async def test_failures_on_one_worker_refuse_the_address_on_every_other():
    clock = Clock()
    redis = FakeRedis(clock)
    workers = [FailedAttempts(FailureLimit(4, 60), prefix="lunch:web:failures:app:", clock=clock) for _ in range(2)]
    for worker in workers:
        worker.use(redis)  # type: ignore[arg-type]
    for i in range(4):
        assert await workers[i % 2].record("10.0.0.9") == i + 1
    assert await workers[0].retry_after("10.0.0.9") == pytest.approx(60)
    assert await workers[1].retry_after("10.0.0.9") == pytest.approx(60)
    assert await workers[1].retry_after("10.0.0.8") is None
    clock.now += 60
    assert await workers[0].retry_after("10.0.0.9") is None


async def test_with_redis_down_each_worker_counts_alone_and_says_so_once(caplog):
    clock = Clock()
    redis = FakeRedis(clock)
    redis.down = True
    attempts = FailedAttempts(FailureLimit(3, 60), prefix="p:", clock=clock, retry_redis_after=5)
    attempts.use(redis)  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="streams.web_throttle"):
        for _ in range(3):
            await attempts.record("10.0.0.7")
        assert await attempts.retry_after("10.0.0.7") == pytest.approx(60)
        redis.down = False
        clock.now += 6  # Redis is tried again after 5 s: it has no count, this worker's still refuses
        assert await attempts.retry_after("10.0.0.7") == pytest.approx(54)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "web: failed sign-in attempts counted by this worker alone: Redis unreachable (ConnectionError)",
        "web: failed sign-in attempts counted in Redis again, for the whole fleet",
    ]


# -- the middleware --------------------------------------------------------------------------------


def guard(token: str | None = TOKEN, clock: Clock | None = None) -> WebGuard:
    settings = Settings(app_id="lunch-test", web_allowed_hosts=("127.0.0.1",), ops_token=token)
    made = WebGuard.of(settings, FailureLimit(max_failures=3, window=60))
    made._clock = clock or Clock()
    return made


async def _ok(request: web.Request) -> web.Response:
    auth = request.get(AUTH)
    return web.json_response({"ok": True, "how": auth.how if auth else None})


async def _form(request: web.Request) -> web.Response:
    return web.json_response({"dry_run": (await request.post()).get("dry_run")})


@pytest.fixture
async def served() -> AsyncIterator:
    async def serve(the_guard: WebGuard) -> TestClient:
        app = web.Application(middlewares=[the_guard])
        app.router.add_get("/livez", _ok)
        app.router.add_get("/metrics", _ok)
        app.router.add_get("/ops/", _ok)
        app.router.add_post("/ops/replay/", _form)
        app.router.add_get(SIGN_IN, the_guard.sign_in_form)
        app.router.add_post(SIGN_IN, the_guard.sign_in)
        app.router.add_post(SIGN_OUT, the_guard.sign_out)
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    clients: list[TestClient] = []
    yield serve
    for client in clients:
        await client.close()


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


async def test_probes_and_metrics_answer_anyone_at_any_host(served):
    for the_guard in (guard(), guard(token=None)):
        client = await served(the_guard)
        for path in ("/livez", "/metrics"):
            response = await client.get(path, headers={"Host": "10.1.2.3:6066"})  # a pod IP, as Kubernetes sends
            assert response.status == 200 and (await response.json())["how"] is None


async def test_every_other_route_needs_the_token_and_the_right_host(served):
    client = await served(guard())
    response = await client.get("/ops/", headers={"Host": "rebound.evil.example"})
    assert response.status == 421
    response = await client.get("/ops/")
    assert response.status == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await client.get("/nowhere/")).status == 401  # not even whether a route exists
    response = await client.get("/ops/?day=x", headers={"Accept": "text/html"}, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/signin/?next=/ops/?day%3Dx"
    response = await client.get("/ops/", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status == 200 and (await response.json())["how"] == "bearer"
    assert {k: response.headers[k] for k in SECURITY_HEADERS} == SECURITY_HEADERS
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp and "script" not in csp
    assert re.search(r"style-src-elem 'sha256-[A-Za-z0-9+/=]+'", csp) and "unsafe-inline" not in csp.split(";")[1]
    response = await client.post("/ops/replay/", headers={"Authorization": f"Bearer {TOKEN}"}, data={"dry_run": "1"})
    assert response.status == 200 and (await response.json()) == {"dry_run": "1"}  # a script needs no CSRF token


async def test_without_ops_token_the_routes_are_off(served):
    client = await served(guard(token=None))
    for path in ("/ops/", SIGN_IN):
        response = await client.get(path, headers={"Authorization": "Bearer anything-at-all"})
        assert response.status == 404 and "OPS_TOKEN is not set" in await response.text()


async def test_wrong_tokens_are_logged_without_the_guess_then_throttled(served, caplog):
    client = await served(guard())
    guess = "not-the-token-but-a-GUESS-0123456789"
    with caplog.at_level(logging.WARNING, logger="streams.web_security"):
        statuses = [(await client.get("/ops/", headers={"Authorization": f"Bearer {guess}"})).status for _ in range(4)]
        right = await client.get("/ops/", headers={"Authorization": f"Bearer {TOKEN}"})
    assert statuses == [401, 401, 401, 429]
    assert right.status == 429 and int(right.headers["Retry-After"]) == 60  # refused before its token is read
    lines = [r.getMessage() for r in caplog.records]
    assert (
        lines[0]
        == "web: wrong OPS_TOKEN (Authorization header) from 127.0.0.1 for GET /ops/: 1 failed attempt(s) in 60 s"
    )
    assert lines[2].endswith("3 failed attempt(s) in 60 s; refused for 60 s")
    assert not any(guess in line or TOKEN in line for line in lines)


def _cookie(response, name: str) -> str:
    return response.cookies[name].value


async def test_a_browser_signs_in_through_the_form_and_its_forms_carry_the_csrf_token(served):
    the_guard = guard()
    client = await served(the_guard)
    form = await client.get(SIGN_IN + "?next=/ops/%3Fday%3D2026-11-18")
    page = await form.text()
    assert form.status == 401 and 'name="token"' in page and 'value="/ops/?day=2026-11-18"' in page
    nonce = form.cookies[f"{the_guard.cookie}_signin"]
    assert nonce["httponly"] and nonce["samesite"] == "Strict"
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    signin_cookie = {f"{the_guard.cookie}_signin": nonce.value}

    fields = {"token": TOKEN, "next": "/ops/?day=2026-11-18", "csrf": "forged"}
    expired = await client.post(SIGN_IN, data=fields, cookies=signin_cookie, allow_redirects=False)
    assert expired.status == 401 and "The form expired" in await expired.text()
    wrong = await client.post(SIGN_IN, data=fields | {"csrf": csrf, "token": "nope"}, cookies=signin_cookie)
    assert wrong.status == 401 and "Wrong OPS_TOKEN" in await wrong.text()
    signed = await client.post(SIGN_IN, data=fields | {"csrf": csrf}, cookies=signin_cookie, allow_redirects=False)
    assert signed.status == 303 and signed.headers["Location"] == "/ops/?day=2026-11-18"
    morsel = signed.cookies[the_guard.cookie]
    assert morsel["httponly"] and morsel["samesite"] == "Strict" and morsel["path"] == "/"
    assert TOKEN not in morsel.value
    session = {the_guard.cookie: morsel.value}

    page = await client.get("/ops/", cookies=session)
    assert page.status == 200 and (await page.json())["how"] == "session"
    assert (await client.post("/ops/replay/", data={"dry_run": "1"}, cookies=session)).status == 403
    token = the_guard.credentials.csrf(morsel.value)
    replay = await client.post("/ops/replay/", data={"dry_run": "1", "csrf": token}, cookies=session)
    assert replay.status == 200 and (await replay.json()) == {"dry_run": "1"}
    again = await client.get(SIGN_IN, cookies=session, allow_redirects=False)
    assert again.status == 303 and again.headers["Location"] == "/ops/"

    out = await client.post(SIGN_OUT, data={"csrf": token}, cookies=session, allow_redirects=False)
    assert out.status == 303 and out.headers["Location"] == SIGN_IN and out.cookies[the_guard.cookie].value == ""


async def test_an_expired_session_is_sent_back_to_the_form(served):
    clock = Clock()
    the_guard = guard(clock=clock)
    client = await served(the_guard)
    session = {the_guard.cookie: the_guard.credentials.issue(clock.now)}
    assert (await client.get("/ops/", cookies=session)).status == 200
    clock.now += the_guard.credentials.lifetime
    response = await client.get("/ops/", cookies=session, headers={"Accept": "text/html"}, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"].startswith(SIGN_IN)


def test_the_guards_repr_shows_no_secret():
    assert TOKEN not in repr(guard()) and "OPS_TOKEN unset" in repr(guard(token=None))
    assert guard().fleet_headers() == {"Authorization": f"Bearer {TOKEN}"} and guard(token=None).fleet_headers() == {}


async def test_table_route_forwards_with_the_fleets_token_and_the_owners_host():
    from types import SimpleNamespace

    import aiohttp
    from faust.exceptions import SameNode
    from yarl import URL

    from streams.web_router import guarded_router

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({name: request.headers.get(name) for name in ("Host", "Authorization", "Cookie")})

    owner = web.Application()
    owner.router.add_get("/recommendations/batches/", echo)
    server = TestServer(owner, host="127.0.0.1")
    await server.start_server()
    owner_url, me = server.make_url("/"), URL("http://127.0.0.1:1")
    router = guarded_router(guard())(SimpleNamespace(assignor=None))  # type: ignore[arg-type]
    try:
        async with aiohttp.ClientSession() as http:
            router.app = SimpleNamespace(conf=SimpleNamespace(canonical_url=me), http_client=http)
            request = SimpleNamespace(
                method="GET",
                url=URL("http://localhost:1/recommendations/batches/"),
                headers={"Cookie": "lunch_ops_x=session", "Host": "localhost:1", "Accept": "application/json"},
            )
            web_driver = SimpleNamespace(text=lambda text, **kwargs: text)
            answer = await router._route_req(owner_url, web_driver, request)
            with pytest.raises(SameNode):
                await router._route_req(me, web_driver, request)
    finally:
        await server.close()
    assert json.loads(answer) == {
        "Host": f"127.0.0.1:{owner_url.port}",
        "Authorization": f"Bearer {TOKEN}",
        "Cookie": None,  # the caller's cookie stays with the caller
    }
