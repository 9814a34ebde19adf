import json

import pytest

from models.records import InvalidEvent, parse_daily_task, parse_deadline_passed, payload_text


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
