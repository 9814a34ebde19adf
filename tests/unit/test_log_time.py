"""The times of both log formats are the standard library's, to the byte, across second boundaries."""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from streams.logs import TEXT_FORMAT, JsonFormatter, TextFormatter

#: Central European time without the tz database: summer time from the last Sunday of March to October's.
CET = "CET-1CEST,M3.5.0,M10.5.0/3"
SUMMER_STARTS, SUMMER_ENDS = 1774746000, 1792890000  # 2026-03-29T01:00:00Z, 2026-10-25T01:00:00Z
# Fractions at and beside the millisecond and microsecond roundings (0.9999995 carries into the next second).
FRACTIONS = (0.0, 1e-7, 0.0004999, 0.0005, 0.0009999, 0.4995, 0.9994999, 0.9995, 0.9999994, 0.9999995, 0.99999999)


def times() -> list[float]:
    around = [
        second + fraction
        for base in (0, SUMMER_STARTS, SUMMER_ENDS, 1798761599)  # the epoch, both clock changes, new year 2027
        for second in range(base - 2, base + 3)
        for fraction in FRACTIONS
    ]
    spread = [random.Random(14).uniform(SUMMER_STARTS - 86400, SUMMER_ENDS + 86400) for _ in range(2000)]
    return sorted(around + spread)


def record_at(created: float) -> logging.LogRecord:
    made = logging.LogRecord("streams.worker", logging.INFO, __file__, 1, "digest cafe=%s: sent", (12,), None)
    made.created, made.msecs = created, int((created - int(created)) * 1000) + 0.0  # as LogRecord makes them
    return made


@pytest.fixture
def central_european_time() -> Iterator[None]:
    before = os.environ.get("TZ")
    os.environ["TZ"] = CET
    time.tzset()
    try:
        assert time.localtime(SUMMER_ENDS - 1).tm_isdst == 1 and time.localtime(SUMMER_ENDS).tm_isdst == 0
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


@pytest.mark.parametrize("order", ["in time", "shuffled"])
def test_a_text_line_is_the_standard_formatters(central_european_time, order):
    every = times()
    if order == "shuffled":  # a new second on nearly every line
        random.Random(7).shuffle(every)
    ours, standard = TextFormatter(), logging.Formatter(TEXT_FORMAT)
    for created in every:
        line = record_at(created)
        assert ours.format(line) == standard.format(line), created
    assert ours.format(record_at(SUMMER_ENDS - 0.0005)).startswith("[2026-10-25 02:59:59,999] ")  # summer
    assert ours.format(record_at(SUMMER_ENDS)).startswith("[2026-10-25 02:00:00,000] ")  # winter again


@pytest.mark.parametrize("order", ["in time", "shuffled"])
def test_a_json_time_is_datetimes(order):
    every = times()
    if order == "shuffled":
        random.Random(7).shuffle(every)
    formatter = JsonFormatter()
    for created in every:
        expected = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
        assert json.loads(formatter.format(record_at(created)))["time"] == expected, created
    assert json.loads(formatter.format(record_at(SUMMER_ENDS - 1e-7)))["time"] == "2026-10-25T01:00:00.000+00:00"
