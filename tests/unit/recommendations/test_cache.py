import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from agents.recommendations.advice import Recommendation
from agents.recommendations.cache import cache_key, cache_value, parse_cache_value


def test_cache_value_has_exactly_the_contract_fields():
    at = datetime(2026, 11, 25, 6, 0, tzinfo=timezone(timedelta(hours=3)))
    value = json.loads(cache_value(Recommendation(summary="Eat soup", tips=["Try borscht"]), at))
    assert value == {"summary": "Eat soup", "tips": ["Try borscht"], "generated_at": "2026-11-25T06:00:00+03:00"}
    assert cache_key(42) == "recommendations:user:42"


def test_naive_timestamps_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        cache_value(Recommendation(summary="s", tips=["t"]), datetime(2026, 11, 25))


@pytest.mark.parametrize("raw", [None, b"nope", b"[]", b'{"summary": "s"}', b'{"generated_at": "yesterday"}'])
def test_foreign_or_broken_entries_are_treated_as_absent(raw):
    assert parse_cache_value(raw) is None


def test_parse_cache_value_reads_ours():
    raw = cache_value(Recommendation(summary="s", tips=["t"]), datetime(2026, 1, 1, tzinfo=UTC))
    assert parse_cache_value(raw)["summary"] == "s"
