"""TelegramClient over real HTTP against the sandbox Bot API (and the sandbox itself)."""

from __future__ import annotations

import json
import logging
import socket
import traceback
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator

import pytest

from agents.notifications.telegram import TelegramClient
from agents.notifications.telegram_errors import (
    TelegramBadRequest,
    TelegramChatMigrated,
    TelegramError,
    TelegramForbidden,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramTransportError,
    TelegramUnauthorized,
)
from sandbox.telegram import Reply, SandboxTelegram, html_problem, run_in_thread

SECRET = "AAH-s3cr3t_TokenPart-0123456789abcdef"
TOKEN = f"123456:{SECRET}"
CHAT = 42


@pytest.fixture
async def fake() -> AsyncIterator[SandboxTelegram]:
    async with SandboxTelegram() as server:
        yield server


@pytest.fixture
async def client(fake: SandboxTelegram) -> AsyncIterator[TelegramClient]:
    async with TelegramClient(token=TOKEN, base_url=fake.base_url, timeout=2.0) as telegram:
        yield telegram


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_sends_html_without_link_previews(fake: SandboxTelegram, client: TelegramClient) -> None:
    assert await client.send_message(CHAT, "<b>Cafe</b> &amp; co") == 1
    assert await client.send_message(CHAT, "second") == 2
    first = fake.messages[0]
    assert first.params == {
        "chat_id": CHAT,
        "text": "<b>Cafe</b> &amp; co",
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": True},
    }
    assert (first.token, first.status, first.delivered) == (TOKEN, 200, True)


async def test_429_raises_retry_after_and_the_next_send_goes_through(
    fake: SandboxTelegram, client: TelegramClient
) -> None:
    fake.script(CHAT, Reply.retry_after(7))
    with pytest.raises(TelegramRetryAfter) as caught:
        await client.send_message(CHAT, "hello")
    assert (caught.value.retry_after, caught.value.retryable) == (7.0, True)
    assert await client.send_message(CHAT, "hello") == 1
    assert [m.status for m in fake.messages] == [429, 200]


async def test_migration_names_the_new_chat(fake: SandboxTelegram, client: TelegramClient) -> None:
    fake.script(-5, Reply.migrated(-1001234567890))
    with pytest.raises(TelegramChatMigrated) as caught:
        await client.send_message(-5, "hello")
    assert caught.value.new_chat_id == -1001234567890
    assert not caught.value.retryable
    assert await client.send_message(caught.value.new_chat_id, "hello") == 1


@pytest.mark.parametrize(
    ("reply", "kind", "status"),
    [
        (Reply.chat_not_found(), TelegramBadRequest, 400),
        (Reply.kicked(), TelegramForbidden, 403),
        (Reply.not_found(), TelegramUnauthorized, 404),
        (Reply.unauthorized(), TelegramUnauthorized, 401),
    ],
)
async def test_permanent_failures_are_not_retryable(
    fake: SandboxTelegram, client: TelegramClient, reply: Reply, kind: type[TelegramError], status: int
) -> None:
    fake.script(CHAT, reply)
    with pytest.raises(kind) as caught:
        await client.send_message(CHAT, "hello")
    assert (caught.value.status, caught.value.retryable) == (status, False)


@pytest.mark.parametrize("status", [500, 502])
async def test_5xx_html_page_is_a_retryable_server_error(
    fake: SandboxTelegram, client: TelegramClient, status: int
) -> None:
    fake.script(CHAT, Reply.server_error(status))
    with pytest.raises(TelegramServerError) as caught:
        await client.send_message(CHAT, "hello")
    assert (caught.value.status, caught.value.retryable) == (status, True)


async def test_read_timeout_is_an_ambiguous_transport_error(fake: SandboxTelegram) -> None:
    fake.script(CHAT, Reply.slow(1.0))
    async with TelegramClient(token=TOKEN, base_url=fake.base_url, timeout=0.2) as client:
        with pytest.raises(TelegramTransportError) as caught:
            await client.send_message(CHAT, "hello")
    assert (caught.value.retryable, caught.value.status) == (True, None)
    assert "may have been delivered" in caught.value.description


async def test_connection_refused_is_not_ambiguous() -> None:
    base_url = f"http://127.0.0.1:{closed_port()}"
    async with TelegramClient(token=TOKEN, base_url=base_url, timeout=1.0) as client:
        with pytest.raises(TelegramTransportError) as caught:
            await client.send_message(CHAT, "hello")
    assert caught.value.retryable and "may have been delivered" not in caught.value.description


async def test_rejected_token_latches_without_more_http(
    fake: SandboxTelegram, client: TelegramClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.script(CHAT, Reply.unauthorized())
    for _ in range(3):
        with pytest.raises(TelegramUnauthorized) as caught:
            await client.send_message(CHAT, "hello")
        assert caught.value.status == 401
    assert fake.requests == 1
    assert client.unauthorized
    critical = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 1
    assert "telegram bot token rejected" in critical[0]
    assert "(bot id 123456)" in critical[0]


async def test_wrong_token_is_unauthorized() -> None:
    async with (
        SandboxTelegram(expected_token="999:right") as fake,
        TelegramClient(token=TOKEN, base_url=fake.base_url, timeout=2.0) as client,
    ):
        with pytest.raises(TelegramUnauthorized):
            await client.send_message(CHAT, "hello")
    assert fake.messages == ()


async def test_throttle_is_awaited_before_each_request(fake: SandboxTelegram) -> None:
    calls: list[tuple[int, float | None]] = []

    class Recorder:
        async def acquire(self, chat_id: int, max_wait: float | None = None) -> float:
            calls.append((chat_id, max_wait))
            assert fake.requests == len(calls) - 1  # before the HTTP request
            return 0.0

    throttle = Recorder()
    async with TelegramClient(token=TOKEN, base_url=fake.base_url, timeout=2.0, throttle=throttle) as client:
        await client.send_message(CHAT, "a", max_wait=3.0)
        await client.send_message(-7, "b")
    assert calls == [(CHAT, 3.0), (-7, None)]


async def test_repr_shows_the_bot_id_only(client: TelegramClient) -> None:
    assert repr(client) == "<TelegramClient bot_id=123456>"
    with pytest.raises(ValueError, match="token"):
        TelegramClient(token="", base_url="http://x", timeout=1.0)


def everything_said_about(exc: BaseException) -> str:
    """Formatted traceback, str/repr/args of the error and of every cause and context."""
    texts = ["".join(traceback.format_exception(exc))]
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        texts += [str(current), repr(current), repr(current.args), repr(vars(current))]
        todo += [current.__cause__, current.__context__]
    return "\n".join(texts)


async def test_the_token_never_leaks(fake: SandboxTelegram, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # A proxy error page and an API error that echo the request path, as some do.
    page = f"<html><body><h1>502 Bad Gateway</h1><p>POST /bot{TOKEN}/sendMessage</p></body></html>"
    echo = Reply.error(400, f"Bad Request: no such path /bot{TOKEN}/sendMessage")
    fake.script(CHAT, Reply.server_error(502, page), echo, Reply.slow(1.0), Reply.unauthorized())
    cases = {
        f"http://127.0.0.1:{closed_port()}": [TelegramTransportError],
        "http://127.0.0.1:99999": [TelegramTransportError],  # aiohttp's InvalidURL text is the whole URL
        fake.base_url: [
            TelegramServerError,
            TelegramBadRequest,
            TelegramTransportError,
            TelegramUnauthorized,
            TelegramUnauthorized,  # latched: raised without HTTP
        ],
    }
    for base_url, expected in cases.items():
        async with TelegramClient(token=TOKEN, base_url=base_url, timeout=0.3) as client:
            for kind in expected:
                with pytest.raises(kind) as caught:
                    await client.send_message(CHAT, "hello")
                assert SECRET not in everything_said_about(caught.value)
            assert SECRET not in repr(client)
    logged = caplog.text + "".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert any(r.levelno == logging.CRITICAL for r in caplog.records)
    assert SECRET not in logged


# -- the sandbox itself ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("<b>bold</b> <i>x</i> &lt;tag&gt; &amp; &quot; &#128512; &#x1F600;", True),
        ('<a href="https://x">link</a> <pre><code class="language-py">x</code></pre>', True),
        ("Tom & Jerry", False),
        ("1 < 2", False),
        ("<script>x</script>", False),
        ("<b>unclosed", False),
        ("<b><i>crossed</b></i>", False),
        ("&nbsp;", False),
    ],
)
def test_html_problem_follows_telegrams_subset(text: str, ok: bool) -> None:
    assert (html_problem(text) is None) is ok


def test_thread_mode_serves_form_posts_and_scripts() -> None:
    with run_in_thread(max_text_length=10) as fake:

        def post(**fields: object) -> tuple[int, dict[str, object]]:
            data = urllib.parse.urlencode(fields).encode()
            request = urllib.request.Request(f"{fake.base_url}/bot{TOKEN}/sendMessage", data=data)
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    return response.status, json.load(response)
            except urllib.error.HTTPError as exc:
                return exc.code, json.load(exc)

        fake.script(-100, Reply.kicked())
        assert post(chat_id=-100, text="hi")[0] == 403
        status, body = post(chat_id=-100, text="<b>hi</b>", parse_mode="HTML")
        result = body["result"]
        assert status == 200
        assert isinstance(result, dict)
        assert result["message_id"] == 1
        assert (result["chat"], result["text"]) == ({"id": -100, "type": "group"}, "hi")
        assert post(chat_id=-100, text="x" * 11) == (
            400,
            {"ok": False, "error_code": 400, "description": "Bad Request: message is too long"},
        )
        assert [m.status for m in fake.messages] == [403, 200, 400]
        assert [m.text for m in fake.wait_for(1)] == ["<b>hi</b>"]


async def test_enforced_limits_answer_429_per_group() -> None:
    async with (
        SandboxTelegram(enforce_limits=True, group_per_minute=3) as fake,
        TelegramClient(token=TOKEN, base_url=fake.base_url, timeout=2.0) as client,
    ):
        for _ in range(3):
            await client.send_message(-9, "x")
        await client.send_message(9, "a private chat is not limited per minute")
        with pytest.raises(TelegramRetryAfter) as caught:
            await client.send_message(-9, "x")
    assert 59 <= caught.value.retry_after <= 60
