import contextlib
import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.records import (
    BatchProgress,
    BatchTrigger,
    DigestRetry,
    InvalidEvent,
    RecommendationRequest,
    dead_letter,
    decode_record,
    parse_batch_progress,
    parse_batch_trigger,
    parse_daily_task,
    parse_dead_letter,
    parse_deadline_passed,
    parse_digest_retry,
    parse_recommendation_request,
    payload_text,
)
from streams.dead_letters import plan_replay, read_letter


def test_plain_json_deadline_passed_is_accepted():
    record = parse_deadline_passed(b'{"cafe_id": 12, "date": "2026-11-25", "deadline": "2026-11-25T11:00:00+03:00"}')
    assert (record.cafe_id, record.date, record.deadline) == (12, "2026-11-25", "2026-11-25T11:00:00+03:00")
    assert record.order_date.isoformat() == "2026-11-25"


def test_faust_metadata_and_extra_fields_are_ignored():
    raw = json.dumps({"cafe_id": 3, "date": "2026-01-02", "__faust": {"ns": "x.DeadlinePassed"}, "extra": 1})
    record = parse_deadline_passed(raw.encode())
    assert (record.cafe_id, record.date, record.deadline) == (3, "2026-01-02", None)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty"),
        (b"not json", "not JSON"),
        (b"\xff\xfe\x00", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"date": "2026-11-25"}', "missing field 'cafe_id'"),
        (b'{"cafe_id": "12", "date": "2026-11-25"}', "'cafe_id' must be an integer"),
        (b'{"cafe_id": true, "date": "2026-11-25"}', "'cafe_id' must be an integer"),
        (b'{"cafe_id": 1.5, "date": "2026-11-25"}', "'cafe_id' must be an integer"),
        (b'{"cafe_id": -4, "date": "2026-11-25"}', "out of range"),
        (b'{"cafe_id": 99999999999999999999999, "date": "2026-11-25"}', "out of range"),
        (b'{"cafe_id": 1}', "missing field 'date'"),
        (b'{"cafe_id": 1, "date": "nope"}', "YYYY-MM-DD"),
        (b'{"cafe_id": 1, "date": "2026-02-30"}', "not a valid date"),
        (b'{"cafe_id": 1, "date": "1900-01-01"}', "out of range"),
        (b'{"cafe_id": 1, "date": 20261125}', "YYYY-MM-DD"),
        (b'{"cafe_id": 1, "date": "2026-11-25", "deadline": "yesterday"}', "deadline"),
        (b'{"cafe_id": 1, "date": "2026-11-25", "deadline": 5}', "deadline"),
        (b'{"cafe_id": 1, "date": "' + b"x" * 70_000 + b'"}', "too large"),
    ],
)
def test_malformed_deadline_passed_is_rejected_with_a_reason(raw, reason):
    with pytest.raises(InvalidEvent, match=reason):
        parse_deadline_passed(raw)


def test_daily_task_parsing():
    assert parse_daily_task(b'{"type": "generate_recommendations"}').type == "generate_recommendations"
    assert parse_daily_task(b'{"type": "other", "requested_at": "2026-11-25T06:00:00+00:00"}').type == "other"
    for bad in (b'{"type": 5}', b'{"type": ""}', b"{}", b"null"):
        with pytest.raises(InvalidEvent):
            parse_daily_task(bad)


def test_payload_text_keeps_binary_readable():
    assert payload_text(b'{"a": 1}') == '{"a": 1}'
    assert payload_text(b"\xff\x00") == "base64:/wA="
    assert payload_text(None) == ""


# -- total decoders: any bytes give a record or an InvalidEvent ----------------------------------------------------
DECODERS = (
    parse_deadline_passed,
    parse_daily_task,
    parse_digest_retry,
    parse_batch_trigger,
    parse_recommendation_request,
    parse_batch_progress,
    parse_dead_letter,
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
field_names = st.sampled_from(
    ["cafe_id", "date", "attempt", "not_before", "replay", "type", "reason", "batch_id", "user_id", "day", "kind", "at"]
)
near_records = st.dictionaries(field_names, json_values, max_size=8).map(lambda d: json.dumps(d).encode())


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"[" * 1400, "nested deeper than 16"),
        (b'{"a": ' * 40 + b"1" + b"}" * 40, "nested deeper than 16"),
        (b'{"cafe_id": Infinity, "date": "2026-11-25"}', "Infinity is not a JSON number"),
        (b'{"cafe_id": NaN, "date": "2026-11-25"}', "NaN is not a JSON number"),
        (b'{"cafe_id": ' + b"1" * 5000 + b', "date": "2026-11-25"}', "not JSON: ValueError"),
    ],
)
def test_hostile_json_is_an_invalid_event_with_a_reason(raw, reason):
    for decode in DECODERS:
        with pytest.raises(InvalidEvent, match=reason):
            decode(raw)


def test_deep_brackets_inside_a_string_are_only_text():
    raw = json.dumps({"cafe_id": 3, "date": "2026-11-25", "deadline": None, "note": "[" * 500}).encode()
    assert parse_deadline_passed(raw).cafe_id == 3


@given(st.binary(max_size=300) | near_records | json_values.map(lambda v: json.dumps(v).encode()))
def test_every_decoder_is_total(raw):
    for decode in DECODERS:
        with contextlib.suppress(InvalidEvent):
            decode(raw)


@given(st.binary(max_size=300) | near_records)
def test_planning_a_replay_of_any_letter_never_raises(raw):
    letter = read_letter(raw)
    assert isinstance(letter, dict) and "reason" in letter
    plan_replay(letter, 0.0)


@given(st.dictionaries(st.text(max_size=12), json_values, max_size=6))
def test_planning_a_replay_of_any_json_object_never_raises(letter):
    plan_replay(letter, 0.0)


def test_a_letter_with_a_nested_payload_is_shown_and_not_replayable():
    letter = read_letter(dead_letter("lunch.deadline-passed", "not JSON", b"7", b"[" * 1400).dumps())
    assert letter["payload"] == "[" * 1400
    assert plan_replay(letter, 0.0) is None


def test_our_own_records_decode_with_every_field_checked():
    retry = DigestRetry(cafe_id=5, date="2026-11-25", attempt=2, not_before=10.0, replay=True)
    assert decode_record(retry.dumps(), DigestRetry) == retry
    assert parse_batch_trigger(BatchTrigger(reason="tick").dumps()).reason == "tick"
    request = RecommendationRequest(batch_id="b", user_id=9, day="2026-11-25")
    assert parse_recommendation_request(request.dumps()) == request
    progress = BatchProgress(batch_id="b", kind="succeeded", at=1.5, user_id=9, total_tokens=12)
    assert parse_batch_progress(progress.dumps()) == progress
    for raw, reason in [
        (b'{"cafe_id": 5, "date": "2026-11-25", "attempt": 0, "not_before": 1}', "'attempt' out of range"),
        (b'{"cafe_id": 5, "date": "2026-11-25", "attempt": 1, "not_before": "soon"}', "finite number"),
        (b'{"cafe_id": 5, "date": "tomorrow", "attempt": 1, "not_before": 1}', "YYYY-MM-DD"),
        (b'{"cafe_id": 5, "date": "2026-11-25", "attempt": 1, "not_before": 1, "replay": "yes"}', "true or false"),
    ]:
        with pytest.raises(InvalidEvent, match=reason):
            parse_digest_retry(raw)
    with pytest.raises(InvalidEvent, match="'reason' must be one of manual, scheduled, tick"):
        parse_batch_trigger(b'{"reason": "now"}')
    with pytest.raises(InvalidEvent, match="'total' out of range"):
        parse_batch_progress(b'{"batch_id": "b", "kind": "started", "at": 1, "total": -1}')


def test_a_huge_value_makes_a_bounded_letter_that_keeps_its_size_and_digest():
    value = bytes(range(1, 32)) * 10_000  # 310 KB of control bytes: six JSON characters each
    letter = dead_letter("lunch.deadline-passed", "value too large", b"1", value, max_payload=65_536)
    assert letter.truncated and letter.payload_size == len(value)
    assert letter.payload_sha256 == hashlib.sha256(value).hexdigest()
    assert len(json.dumps(letter.payload)) <= 65_536 and value.startswith(letter.payload.encode())
    assert len(letter.dumps()) < 70_000
    small = dead_letter("t", "r", None, b'{"a": 1}')
    assert not small.truncated and small.payload == '{"a": 1}' and small.payload_sha256 is None
