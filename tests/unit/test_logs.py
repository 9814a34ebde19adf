"""LOG_FORMAT=json: one JSON object per line with the structured fields, configured through Faust's logging setup;
LOG_FORMAT=text off a terminal: Faust's line, without colorlog."""

from __future__ import annotations

import io
import json
import logging
import sys

from mode.utils.logging import DEFAULT_COLOR_FORMAT, DEFAULT_COLORS, ExtensionFormatter, setup_logging

from streams.logs import JsonFormatter, TextFormatter, fields_of, logging_config


def record(message: str, *args: object, level: int = logging.INFO, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("agents.notifications.notifier", level, __file__, 1, message, args, None)
    made.__dict__.update(extra)
    return made


def test_the_fields_are_read_from_the_tagged_and_the_plain_forms():
    assert fields_of("digest cafe=12 date=2026-11-25 attempt=2: sent to chat -100 in 1 part(s)") == {
        "cafe": 12,
        "date": "2026-11-25",
        "attempt": 2,
    }
    assert fields_of("recommendation batch=2026-11-25-manual-1a2b user=7: already counted") == {
        "batch": "2026-11-25-manual-1a2b",
        "user": 7,
    }
    assert fields_of("recommendations batch 2026-11-25-daily-ab12: 3/10 done (3 ok)") == {
        "batch": "2026-11-25-daily-ab12"
    }
    assert fields_of("cafe 12: chat -100 migrated to -200") == {"cafe": 12}
    assert fields_of("user 5: 2 order(s) with an invalid total_price left out") == {"user": 5}
    # Words that merely follow the field names are not values.
    assert fields_of("recommendations: the batch due at 2026-11-25T06:00 did not run; catching up now") == {}
    assert fields_of("[^Worker]: Starting...") == {}


def test_a_line_is_one_json_object_with_time_level_logger_message_and_fields():
    line = JsonFormatter().format(record("digest cafe=%s date=%s attempt=%s: %s", 12, "2026-11-25", 3, "sent"))
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed.pop("time").endswith("+00:00")
    assert parsed == {
        "level": "INFO",
        "logger": "agents.notifications.notifier",
        "message": "digest cafe=12 date=2026-11-25 attempt=3: sent",
        "cafe": 12,
        "date": "2026-11-25",
        "attempt": 3,
    }


def test_extra_fields_win_and_no_other_record_attribute_is_written():
    secret = "123456:SECRET-token"
    line = json.loads(JsonFormatter().format(record("batch stalled", batch="b-1", user=9, token=secret)))
    assert (line["batch"], line["user"]) == ("b-1", 9)
    assert "token" not in line and secret not in json.dumps(line)


def test_an_exception_stays_in_its_line():
    try:
        raise ValueError("boom")
    except ValueError:
        failing = record("digest cafe=%s: unexpected error", 4, level=logging.ERROR)
        failing.exc_info = sys.exc_info()
    line = JsonFormatter().format(failing)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["level"] == "ERROR" and parsed["cafe"] == 4 and "ValueError: boom" in parsed["exception"]


def test_text_keeps_fausts_logging_and_json_swaps_only_the_formatter():
    assert logging_config("text", terminal=True) is None
    handlers, level = list(logging.root.handlers), logging.root.level
    try:
        setup_logging(loglevel="INFO", logfile=io.StringIO(), logging_config=logging_config("json"))
        [handler] = logging.root.handlers
        assert isinstance(handler.formatter, JsonFormatter)
        assert type(handler).__name__ == "StreamHandler"  # Faust's (colorlog's) handler, kept
        assert logging.root.level == logging.INFO
        line = handler.format(record("digest cafe=%s date=%s attempt=%s: x", 1, "2026-11-25", 1))
        assert json.loads(line)["cafe"] == 1
    finally:
        logging.root.handlers[:] = handlers
        logging.root.setLevel(level)


class _Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


def test_text_off_a_terminal_writes_fausts_line_without_colorlog():
    fausts = ExtensionFormatter(stream=_Pipe(), fmt=DEFAULT_COLOR_FORMAT, log_colors=DEFAULT_COLORS)
    plain = TextFormatter()
    lines = [
        record("%s: sent to chat %s in %s part(s)", "digest cafe=12 date=2026-11-25 attempt=1", -100, 1),
        record("Subscribed to topic(s): %r", {"deadline-passed"}),  # a collection: drawn by Faust's formatter
        record("no arguments", level=logging.WARNING, data={"tp": 3}),
    ]
    for line in lines:
        made = logging.makeLogRecord(dict(line.__dict__))
        assert plain.format(line) == fausts.format(made)
    assert "\x1b" not in plain.format(lines[0])


def test_text_is_fausts_own_on_a_terminal_and_plain_elsewhere():
    assert logging_config("text", terminal=True) is None
    handlers, level = list(logging.root.handlers), logging.root.level
    try:
        setup_logging(loglevel="INFO", logfile=_Pipe(), logging_config=logging_config("text", terminal=False))
        [handler] = logging.root.handlers
        assert isinstance(handler.formatter, TextFormatter)
        assert logging.root.level == logging.INFO
    finally:
        logging.root.handlers[:] = handlers
        logging.root.setLevel(level)
