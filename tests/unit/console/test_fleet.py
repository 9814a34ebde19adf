"""Reading a table from the workers that own it: this worker's copy, the others' over HTTP, a silent one as a note."""

from __future__ import annotations

from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from agents.console.fleet import from_every_owner, from_owner

TOPIC = "app-digest-deliveries-changelog"


@pytest.fixture
async def other_worker():
    """Another worker's web server answering ``/ops/api/digests/`` with its part."""

    async def digests(request: web.Request) -> web.Response:
        return web.json_response({"states": {"7": {"status": "sent", "day": request.query.get("day")}}})

    app = web.Application()
    app.router.add_get("/ops/api/digests/", digests)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield URL(f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}")  # type: ignore[union-attr]
    await runner.cleanup()


def fake_app(http: aiohttp.ClientSession, metadata: dict, owner: URL | None = None) -> SimpleNamespace:
    def key_store(table: str, key: str) -> URL:
        if owner is None:
            raise KeyError(key)
        return owner

    router = SimpleNamespace(table_metadata=lambda name: metadata, key_store=key_store)
    return SimpleNamespace(
        router=router, conf=SimpleNamespace(canonical_url=URL("http://127.0.0.1:1")), http_client=http
    )


TABLE = SimpleNamespace(name="digest-deliveries")


async def test_every_owner_answers_and_a_silent_one_is_a_note(other_worker):
    dead = URL("http://127.0.0.1:9")  # nothing listens there
    metadata = {
        "http://127.0.0.1:1": {TOPIC: [0, 1]},  # this worker
        str(other_worker): {TOPIC: [2, 3]},
        str(dead): {TOPIC: [4]},
        "http://127.0.0.1:2": {TOPIC: []},  # owns no partition of the table: not asked
    }
    async with aiohttp.ClientSession() as http:
        parts, notes = await from_every_owner(
            fake_app(http, metadata), TABLE, "/ops/api/digests/?day=2026-11-25", "states", lambda: {"1": {}}
        )
    assert parts == [{"1": {}}, {"7": {"status": "sent", "day": "2026-11-25"}}]
    assert len(notes) == 1 and str(dead) in notes[0] and "did not answer" in notes[0]


async def test_without_an_assignment_this_worker_shows_its_copy():
    async with aiohttp.ClientSession() as http:
        parts, notes = await from_every_owner(fake_app(http, {}), TABLE, "/x", "states", lambda: {"1": {}})
        value, note = await from_owner(fake_app(http, {}), TABLE, "batches", "/x", "batches", lambda: ["mine"])
    assert parts == [{"1": {}}] and "partition assignment unknown" in notes[0]
    assert value == ["mine"] and "partition assignment unknown" in (note or "")


async def test_the_owner_of_a_key_is_asked_unless_it_is_this_worker(other_worker):
    async with aiohttp.ClientSession() as http:
        remote = fake_app(http, {}, owner=other_worker)
        value, note = await from_owner(remote, TABLE, "k", "/ops/api/digests/", "states", lambda: "local")
        assert (value, note) == ({"7": {"status": "sent", "day": None}}, None)
        local = fake_app(http, {}, owner=URL("http://127.0.0.1:1/"))
        assert await from_owner(local, TABLE, "k", "/ops/api/digests/", "states", lambda: "local") == ("local", None)
        gone = fake_app(http, {}, owner=URL("http://127.0.0.1:9"))
        value, note = await from_owner(gone, TABLE, "k", "/ops/api/digests/", "states", lambda: "local")
        assert value is None and "did not answer" in (note or "")
