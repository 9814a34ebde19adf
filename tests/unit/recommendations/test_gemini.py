"""The real google-genai client against the sandbox server, in the test's event loop."""

from __future__ import annotations

import json
import logging
import socket
import time
import traceback

import pytest
from google import genai
from google.genai import types

from agents.recommendations.advice import Recommendation
from agents.recommendations.gemini import GeminiRecommender
from agents.recommendations.gemini_errors import (
    AllKeysExhausted,
    GeminiError,
    GeminiUnavailable,
    RecommendationFailed,
    parse_duration,
)
from agents.recommendations.usage import TokenUsage
from sandbox import gemini as sandbox
from streams.redaction import key_fingerprint

KEY_A = "AIzaSyA-test-secret-key-aaaaaaaaaaaaaa"
KEY_B = "AIzaSyB-test-secret-key-bbbbbbbbbbbbbb"
FP_A, FP_B = key_fingerprint(KEY_A), key_fingerprint(KEY_B)
MODEL = "gemini-test-lite"
PROMPT = 'Recommend a lunch. <<<USER_DATA>>>\n{"name": "Ann"}\n<<<END_USER_DATA>>>'
pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")
GOOD = json.dumps({"summary": "You like soup.", "tips": ["Try the vegan box."]})


@pytest.fixture
async def fake():
    async with sandbox.SandboxGemini() as server:
        yield server


@pytest.fixture
async def make(fake):
    made: list[GeminiRecommender] = []

    def factory(keys=(KEY_A, KEY_B), **kw) -> GeminiRecommender:
        options = {"timeout_s": 5.0, "max_wait_s": 1.0, "server_backoff_base": 0.01} | kw
        rec = GeminiRecommender(api_keys=keys, base_url=fake.base_url, model=MODEL, redis=None, **options)
        made.append(rec)
        return rec

    yield factory
    for rec in made:
        await rec.close()


def served_by(fake) -> list[str]:
    return [r.key for r in fake.requests]


async def test_success_returns_a_validated_recommendation(fake, make):
    text = json.dumps({"summary": " You like soup. ", "tips": [" Try the vegan box. "]})
    fake.script(sandbox.answer(text))
    gemini = make()
    answer = await gemini.recommend(PROMPT)
    assert answer.recommendation == Recommendation(summary="You like soup.", tips=["Try the vegan box."])
    # The answer's usageMetadata, as the sandbox estimates it (about 4 characters a token).
    prompt_tokens, output_tokens = round(len(PROMPT) / 4), round(len(text) / 4)
    assert answer.usage == TokenUsage(prompt_tokens, output_tokens, prompt_tokens + output_tokens)
    assert gemini.key_stats()[FP_A]["total_tokens"] == prompt_tokens + output_tokens
    assert gemini.key_stats()[FP_B]["total_tokens"] == 0
    (request,) = fake.requests
    assert (request.key, request.model, request.prompt) == (FP_A, MODEL, PROMPT)
    assert request.generation_config["responseMimeType"] == "application/json"
    assert set(request.generation_config["responseSchema"]["properties"]) == {"summary", "tips"}


async def test_default_sandbox_answer_is_valid(fake, make):
    rec = (await make().recommend(PROMPT)).recommendation
    assert "Ann" in rec.summary
    assert 1 <= len(rec.tips) <= 5


async def test_requests_go_round_robin(fake, make):
    gemini = make()
    for _ in range(4):
        await gemini.recommend(PROMPT)
    assert served_by(fake) == [FP_A, FP_B, FP_A, FP_B]
    assert gemini.key_stats()[FP_A]["ok"] == 2


@pytest.mark.parametrize(
    "text",
    [
        "not json at all",
        '{"summary": "cut off',
        json.dumps({"summary": "no tips"}),
        json.dumps({"summary": "too many", "tips": ["t"] * 6}),
        json.dumps({"summary": "", "tips": ["t"]}),
        json.dumps({"summary": "s" * 601, "tips": ["t"]}),
    ],
)
async def test_bad_output_fails_this_recommendation(fake, make, text):
    fake.script(sandbox.answer(text))
    gemini = make()
    with pytest.raises(RecommendationFailed) as info:
        await gemini.recommend(PROMPT)
    assert len(fake.requests) == 1  # not retried: the key worked
    assert gemini.key_stats()[FP_A]["state"] == "ready"
    assert info.value.usage is not None and info.value.usage.prompt > 0  # an unusable answer is billed too


async def test_truncated_answer_fails(fake, make):
    fake.script(sandbox.answer('{"summary": "Hi", "ti', finish_reason="MAX_TOKENS"))
    with pytest.raises(RecommendationFailed, match="MAX_TOKENS"):
        await make().recommend(PROMPT)


async def test_per_minute_429_cools_the_key_and_retries_on_another(fake, make):
    fake.script(sandbox.rate_limited("30s"), key=KEY_A)
    gemini = make()
    assert await gemini.recommend(PROMPT)
    assert served_by(fake) == [FP_A, FP_B]
    stats = gemini.key_stats()
    assert stats[FP_A]["state"] == "cooling"
    assert stats[FP_A]["rate_limited"] == 1
    assert 29.0 < stats[FP_A]["ready_in"] <= 30.0
    await gemini.recommend(PROMPT)
    assert served_by(fake)[-1] == FP_B


async def test_per_day_429_parks_the_key(fake, make):
    fake.script(sandbox.rate_limited("20s", per_day=True), key=KEY_A)
    gemini = make()
    assert await gemini.recommend(PROMPT)
    stats = gemini.key_stats()
    assert stats[FP_A]["state"] == "parked"
    assert 60.0 < stats[FP_A]["ready_in"] <= 86400 + 3600 + 60
    assert served_by(fake) == [FP_A, FP_B]


async def test_invalid_key_is_disabled(fake, make):
    fake.script(sandbox.invalid_key(), key=KEY_A)
    gemini = make()
    await gemini.recommend(PROMPT)
    await gemini.recommend(PROMPT)
    assert served_by(fake) == [FP_A, FP_B, FP_B]
    assert gemini.key_stats()[FP_A]["state"] == "disabled"


@pytest.mark.parametrize("status", [401, 403])
async def test_unauthorised_key_is_disabled(fake, make, status):
    fake.script(sandbox.error(status, "PERMISSION_DENIED", "API key blocked."), key=KEY_A)
    gemini = make()
    await gemini.recommend(PROMPT)
    assert gemini.key_stats()[FP_A]["state"] == "disabled"


async def test_503_is_retried_on_another_key(fake, make):
    fake.script(sandbox.unavailable(), key=KEY_A)
    gemini = make(server_backoff_base=30.0)
    assert await gemini.recommend(PROMPT)
    assert served_by(fake) == [FP_A, FP_B]
    assert gemini.key_stats()[FP_A] | {"ready_in": 0} == {
        "ok": 0,
        "rate_limited": 0,
        "errors": 1,
        "in_flight": 0,
        "state": "cooling",
        "ready_in": 0,
        "prompt_tokens": 0,
        "output_tokens": 0,
        "total_tokens": 0,
    }


async def test_persistent_503_gives_up_after_max_attempts(fake, make):
    fake.script(*[sandbox.unavailable()] * 10)
    with pytest.raises(GeminiUnavailable, match="3 attempts"):
        await make(max_attempts=3).recommend(PROMPT)
    assert len(fake.requests) == 3


async def test_waits_for_a_short_cooldown(fake, make):
    fake.script(sandbox.rate_limited("0.05s"))
    started = time.monotonic()
    assert await make(keys=[KEY_A]).recommend(PROMPT)
    assert time.monotonic() - started >= 0.05
    assert served_by(fake) == [FP_A, FP_A]


async def test_cooldown_beyond_the_bound_raises_at_once(fake, make):
    fake.script(sandbox.rate_limited("30s"))
    started = time.monotonic()
    with pytest.raises(AllKeysExhausted) as info:
        await make(keys=[KEY_A], max_wait_s=1.0).recommend(PROMPT)
    assert time.monotonic() - started < 1.0
    assert "no Gemini API key usable for 30 s" in str(info.value)


async def test_all_keys_invalid_exhausts_the_pool(make, fake):
    fake.valid = set()
    gemini = make()
    with pytest.raises(AllKeysExhausted) as info:
        await gemini.recommend(PROMPT)
    assert str(info.value) == "every Gemini API key is disabled"
    assert sorted(served_by(fake)) == sorted([FP_A, FP_B])
    with pytest.raises(AllKeysExhausted):  # no more requests once all are disabled
        await gemini.recommend(PROMPT)
    assert len(fake.requests) == 2


async def test_other_400_fails_the_request_without_blaming_the_key(fake, make):
    fake.script(sandbox.error(400, "INVALID_ARGUMENT", "Request contains an invalid argument."))
    gemini = make()
    with pytest.raises(RecommendationFailed) as info:
        await gemini.recommend(PROMPT)
    assert info.value.code == 400
    assert gemini.key_stats()[FP_A]["state"] == "ready"


async def test_unknown_model_is_a_configuration_error(fake, make):
    fake.script(sandbox.error(404, "NOT_FOUND", "models/gemini-test-lite is not found."))
    with pytest.raises(GeminiError, match="not found") as info:
        await make().recommend(PROMPT)
    assert not isinstance(info.value, RecommendationFailed)
    assert len(fake.requests) == 1


async def test_timeout_is_retried_on_another_key(fake, make):
    fake.script(sandbox.default(delay=0.5), key=KEY_A)
    gemini = make(timeout_s=0.1)
    assert await gemini.recommend(PROMPT)
    assert gemini.key_stats()[FP_A]["errors"] == 1


async def test_connection_refused_is_bounded_and_fast():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gemini = GeminiRecommender(
        api_keys=[KEY_A, KEY_B],
        base_url=f"http://127.0.0.1:{port}",
        model=MODEL,
        redis=None,
        max_attempts=3,
        server_backoff_base=0.01,
        max_wait_s=1.0,
    )
    started = time.monotonic()
    try:
        with pytest.raises(GeminiUnavailable):
            await gemini.recommend(PROMPT)
    finally:
        await gemini.close()
    assert time.monotonic() - started < 2.0  # the SDK's own retry (1-10 s sleeps) is off


async def test_keys_never_leak(fake, make, caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("google_genai", "google", "aiohttp", "agents"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    echo = f"Invalid request for key {KEY_A} / {KEY_B}"
    fake.script(sandbox.error(503, "UNAVAILABLE", echo), sandbox.error(400, "INVALID_ARGUMENT", echo))
    gemini = make()
    failures: list[BaseException] = []
    with pytest.raises(RecommendationFailed) as info:
        await gemini.recommend(PROMPT)
    failures.append(info.value)
    assert FP_A in str(info.value) or FP_B in str(info.value)  # names the key by fingerprint
    fake.script(sandbox.answer("garbage"))
    with pytest.raises(RecommendationFailed) as info:
        await gemini.recommend(PROMPT)
    failures.append(info.value)
    fake.script(sandbox.error(404, "NOT_FOUND", echo))
    with pytest.raises(GeminiError) as info:
        await gemini.recommend(PROMPT)
    failures.append(info.value)
    fake.valid = set()
    with pytest.raises(AllKeysExhausted) as info:
        await gemini.recommend(PROMPT)
    failures.append(info.value)

    texts = [caplog.text, repr(gemini), repr(gemini.pool), repr(gemini.key_stats())]
    texts += [str(r.args) + r.getMessage() for r in caplog.records]
    for exc in failures:
        assert exc.__cause__ is None and exc.__context__ is None
        texts += [str(exc), repr(exc), repr(exc.args), "".join(traceback.format_exception(exc))]
    assert "Gemini" in caplog.text  # something was logged
    for text in texts:
        assert KEY_A not in text and KEY_B not in text


def test_parse_duration():
    assert parse_duration("30s") == 30.0
    assert parse_duration("1.500s") == 1.5
    assert parse_duration("soon", default=7.0) == 7.0
    assert parse_duration(None, default=7.0) == 7.0


# --- the sandbox on its own ------------------------------------------------------------------


def test_thread_runner_serves_the_sync_sdk_client():
    handle = sandbox.run_in_thread(latency=0.01)
    try:
        handle.script(sandbox.answer(GOOD), key=KEY_A)
        client = genai.Client(
            api_key=KEY_A, http_options=types.HttpOptions(base_url=handle.base_url, api_version="v1beta")
        )
        response = client.models.generate_content(
            model=MODEL,
            contents="hello",
            config=types.GenerateContentConfig(response_mime_type="application/json", response_schema=Recommendation),
        )
        assert response.parsed == Recommendation(summary="You like soup.", tips=["Try the vegan box."])
        assert response.usage_metadata.total_token_count >= 1
        (request,) = handle.requests
        assert (request.key, request.model, request.prompt, request.status) == (FP_A, MODEL, "hello", 200)
        client.close()
    finally:
        handle.stop()
    handle.stop()  # idempotent


async def test_sandbox_enforces_requests_per_minute(make, fake):
    fake.rpm_limit, fake.rpm_window = 2, 0.2
    gemini = make(keys=[KEY_A], max_wait_s=2.0)
    for _ in range(3):
        await gemini.recommend(PROMPT)
    statuses = [r.status for r in fake.requests]
    assert statuses == [200, 200, 429, 200]
    assert gemini.key_stats()[FP_A]["rate_limited"] == 1


async def test_sandbox_accepts_the_key_as_query_parameter(fake):
    import aiohttp

    url = f"{fake.base_url}/v1beta/models/{MODEL}:generateContent?key={KEY_B}"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=body) as response:
            payload = await response.json()
        async with session.post(url.split("?")[0], json=body) as anonymous:
            assert anonymous.status == 403
    assert payload["candidates"][0]["finishReason"] == "STOP"
    assert payload["modelVersion"] == MODEL
    assert [r.key for r in fake.requests] == [FP_B, "none"]
