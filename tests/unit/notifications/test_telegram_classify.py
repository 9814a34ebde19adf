"""classify_response: every status and parameters branch, and malformed bodies."""

from __future__ import annotations

import pytest

from agents.notifications.telegram_errors import (
    DEFAULT_RETRY_AFTER,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramChatMigrated,
    TelegramError,
    TelegramForbidden,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorized,
    TelegramUnexpectedResponse,
    classify_response,
)

M = "sendMessage"


def error(code: int, description: str, **parameters: object) -> dict[str, object]:
    body: dict[str, object] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return body


def test_success_returns_the_message_id() -> None:
    body = {"ok": True, "result": {"message_id": 17, "date": 0, "chat": {"id": 1}, "text": "hi"}}
    assert classify_response(M, 200, body) == 17


def test_retry_after_comes_from_parameters() -> None:
    exc = classify_response(M, 429, error(429, "Too Many Requests: retry after 7", retry_after=7))
    assert isinstance(exc, TelegramRetryAfter)
    assert (exc.retry_after, exc.status, exc.method, exc.retryable) == (7.0, 429, M, True)
    assert exc.description == "Too Many Requests: retry after 7"


def test_bare_429_waits_a_default_and_ignores_description_text() -> None:
    exc = classify_response(M, 429, error(429, "Too Many Requests: retry after 99"))
    assert isinstance(exc, TelegramRetryAfter)
    assert exc.retry_after == DEFAULT_RETRY_AFTER


def test_migration_wins_over_status() -> None:
    body = error(400, "Bad Request: group chat was upgraded", migrate_to_chat_id=-1001)
    exc = classify_response(M, 400, body)
    assert isinstance(exc, TelegramChatMigrated)
    assert exc.new_chat_id == -1001
    assert not exc.retryable


@pytest.mark.parametrize(
    ("status", "description", "kind", "retryable"),
    [
        (400, "Bad Request: chat not found", TelegramBadRequest, False),
        (400, "Bad Request: message is too long", TelegramBadRequest, False),
        (401, "Unauthorized", TelegramUnauthorized, False),
        (404, "Not Found", TelegramUnauthorized, False),
        (403, "Forbidden: bot was kicked from the group chat", TelegramForbidden, False),
        (403, "Forbidden: bot was blocked by the user", TelegramForbidden, False),
        (500, "Internal Server Error", TelegramServerError, True),
        (502, "Bad Gateway", TelegramServerError, True),
        (409, "Conflict: whatever", TelegramUnexpectedResponse, False),
        (408, "Request Timeout", TelegramUnexpectedResponse, True),
        (302, "Found", TelegramUnexpectedResponse, True),
    ],
)
def test_status_decides(status: int, description: str, kind: type[TelegramError], retryable: bool) -> None:
    exc = classify_response(M, status, error(status, description))
    assert type(exc) is kind
    assert isinstance(exc, TelegramAPIError)
    assert exc.status == status
    assert exc.description == description
    assert exc.retryable is retryable


def test_description_text_never_decides() -> None:
    # A 400 that *says* "retry after" and "Forbidden" is still a plain bad request.
    exc = classify_response(M, 400, error(400, "Forbidden: Too Many Requests: retry after 5"))
    assert type(exc) is TelegramBadRequest


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_with_an_html_page_is_a_server_error(status: int) -> None:
    exc = classify_response(M, status, None)
    assert type(exc) is TelegramServerError
    assert exc.retryable
    assert exc.description == "response is not a JSON object"


@pytest.mark.parametrize(
    ("body", "description"),
    [
        (None, "response is not a JSON object"),
        ([1, 2], "response is not a JSON object"),
        ("ok", "response is not a JSON object"),
        ({"ok": True}, "response has no result.message_id"),
        ({"ok": True, "result": True}, "response has no result.message_id"),
        ({"ok": True, "result": {"message_id": "17"}}, "response has no result.message_id"),
        ({"ok": True, "result": {"message_id": True}}, "response has no result.message_id"),
        ({"ok": "yes", "result": {"message_id": 1}}, "response has no result.message_id"),
    ],
)
def test_malformed_2xx_is_retryable(body: object, description: str) -> None:
    exc = classify_response(M, 200, body)
    assert type(exc) is TelegramUnexpectedResponse
    assert (exc.retryable, exc.status) == (True, 200)
    assert exc.description == description


@pytest.mark.parametrize(
    "parameters",
    [
        {"retry_after": "5"},
        {"retry_after": True},
        {"retry_after": -1},
        {"migrate_to_chat_id": "-100"},
        {"migrate_to_chat_id": False},
        "not a dict",
    ],
)
def test_malformed_parameters_fall_back_to_status(parameters: object) -> None:
    body = {"ok": False, "error_code": 400, "description": "Bad Request", "parameters": parameters}
    assert type(classify_response(M, 400, body)) is TelegramBadRequest


def test_non_string_description_is_replaced() -> None:
    exc = classify_response(M, 403, {"ok": False, "description": {"nested": 1}})
    assert isinstance(exc, TelegramError)
    assert exc.description == "no description"


def test_long_descriptions_are_capped() -> None:
    exc = classify_response(M, 400, error(400, "x" * 10_000))
    assert isinstance(exc, TelegramError)
    assert len(exc.description) == 300


def test_str_names_method_status_and_description() -> None:
    exc = classify_response(M, 403, error(403, "Forbidden: bot was blocked by the user"))
    assert str(exc) == "sendMessage: Forbidden: bot was blocked by the user (HTTP 403)"
