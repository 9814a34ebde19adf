"""The console's view models: digests by cafe, batches with cost, dead letters by reason, the token check."""

from __future__ import annotations

import json

import pytest

from agents.console.model import (
    batch_rows,
    digest_rows,
    latest_states,
    reason_class,
    select_digests,
    status_counts,
    summarize_letters,
)
from agents.recommendations.usage import TokenPrices


def state(status: str, updated_at: float = 100.0, **extra) -> dict:
    return {"status": status, "attempts": 1, "updated_at": updated_at, "parts_sent": 0, **extra}


STATES = {
    "12": state("failed", last_error="sendMessage: Forbidden: bot was kicked (HTTP 403)", chat_id=-100),
    "3": state("sent", parts_sent=2, chat_id=-300),
    "7": state("skipped", last_error="no orders"),
    "9": state("retrying", attempts=2, next_attempt_at=160.0, last_error="HTTP 502"),
}
NAMES = {3: "Soup & Co", 7: "Kebab House", 9: "Noodle Bar"}  # 12 is not in the database


def test_rows_by_cafe_id_with_names_and_details():
    rows = digest_rows(STATES, NAMES)
    assert [r.cafe_id for r in rows] == [3, 7, 9, 12]
    failed = rows[-1]
    assert (failed.cafe_name, failed.status, failed.detail, failed.chat_id) == (
        None,
        "failed",
        "sendMessage: Forbidden: bot was kicked (HTTP 403)",
        -100,
    )
    assert (rows[0].parts, rows[2].next_attempt_at, rows[2].attempts) == (2, 160.0, 2)
    assert status_counts(rows) == {"sent": 1, "skipped": 1, "retrying": 1, "failed": 1}


def test_filter_by_status_and_search_by_id_or_name():
    rows = digest_rows(STATES, NAMES)
    assert [r.cafe_id for r in select_digests(rows, "failed")] == [12]
    assert [r.cafe_id for r in select_digests(rows, query=" 12 ")] == [12]
    assert [r.cafe_id for r in select_digests(rows, query="house")] == [7]
    assert [r.cafe_id for r in select_digests(rows, "sent", "house")] == []
    assert len(select_digests(rows)) == 4


def test_states_from_several_workers_keep_the_latest():
    owner = {"1": state("sent", updated_at=200.0)}
    standby = {"1": state("retrying", updated_at=150.0), "2": state("skipped")}
    merged = latest_states(standby, owner)
    assert (merged["1"]["status"], merged["2"]["status"]) == ("sent", "skipped")
    assert latest_states(owner, standby)["1"]["status"] == "sent"


def test_batches_newest_first_with_progress_and_cost():
    raw = [
        {"batch_id": "old", "status": "finished", "total": 4, "succeeded": 4, "started_at": 10.0, "finished_at": 50.0,
         "prompt_tokens": 1_000_000, "output_tokens": 200_000, "total_tokens": 1_200_000},
        {"batch_id": "new", "status": "running", "total": 3, "succeeded": 1, "started_at": 100.0, "updated_at": 130.0},
        {"batch_id": "empty", "status": "finished", "total": 0, "started_at": 60.0, "finished_at": 60.0},
    ]  # fmt: skip
    rows = batch_rows(raw, TokenPrices(0.10, 0.40))
    assert [r.counts.batch_id for r in rows] == ["new", "empty", "old"]
    assert [r.percent for r in rows] == [33, 100, 100]
    assert [r.seconds for r in rows] == [30.0, 0.0, 40.0]
    assert rows[2].cost == pytest.approx(0.10 + 0.08)
    assert batch_rows(raw, TokenPrices())[0].cost is None
    assert len(batch_rows(raw, TokenPrices(), limit=1)) == 1


def letter(source: str, reason: str, payload: dict | str, key: str = "12", at: str = "2026-11-25T10:00:00") -> dict:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return {"source_topic": source, "reason": reason, "key": key, "payload": text, "failed_at": at}


def test_dead_letters_by_source_and_reason_with_what_a_replay_would_take():
    digest = {"cafe_id": 12, "date": "2026-11-25"}
    records = [
        (0, 0, letter("t.deadline-passed", "gave up after 6.2 h: HTTP 502", digest, at="2026-11-25T09:00:00")),
        (0, 1, letter("t.deadline-passed", "gave up after 6.4 h: HTTP 502", digest, at="2026-11-25T11:00:00")),
        (1, 0, letter("t.deadline-passed", "not JSON: JSONDecodeError", "garbage", key="1")),
        (1, 1, letter("t.daily-tasks", "missing field 'type'", {"kind": "x"}, key="")),
        (2, 5, {}),
    ]
    letters = summarize_letters(records, {0: 1}, prefix="t.", now=0.0)
    assert (letters.read, letters.pending, letters.replayable) == (5, 4, 1)
    top = letters.groups[0]
    assert (top.source, top.reason, top.count, top.pending) == (
        "deadline-passed",
        "gave up after # h: HTTP 502",
        2,
        1,
    )
    first = letters.latest[0]
    assert (first.source, first.offset, first.replayable, first.pending) == ("deadline-passed", 1, True, True)
    replayed = next(r for r in letters.latest if r.offset == 0 and r.partition == 0)
    assert (replayed.replayable, replayed.pending) == (True, False)
    assert {r.reason for r in letters.latest if not r.replayable} == {
        "not JSON: JSONDecodeError",
        "missing field 'type'",
        "not a dead letter",
    }


def test_reason_class_blanks_what_varies():
    assert reason_class("value too large (70000 bytes)") == "value too large (# bytes)"
    assert reason_class("HTTP 403") == "HTTP 403"
    assert len(reason_class("x" * 500)) == 120
