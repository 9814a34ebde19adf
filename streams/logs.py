"""``LOG_FORMAT=json``: one JSON object per log line, for log pipelines.

Faust configures logging when the worker starts (``mode.utils.logging.setup_logging``);
``logging_config`` is merged into that configuration and only swaps the formatter of
its handler, so the level, the stream and the handler stay Faust's. Each line holds
``time`` (ISO 8601, UTC), ``level``, ``logger`` and ``message``, plus the structured
fields the code already writes into its messages (``digest cafe=12 date=2026-11-25
attempt=2``, ``recommendation batch=… user=…``, ``cafe 12: …``) read back from the
message, or passed as ``extra``. The message is the same text as in text mode, so
what keeps secrets out of it keeps them out of both formats.

``LOG_FORMAT=text`` written to something that is not a terminal (a file, a pipe, a
container's log) uses ``TextFormatter``: Faust's line, without the colorlog machinery
that Faust's coloured formatter runs for every line only to drop the colours there.

Both formatters write the time as the standard library does, but convert and format its
whole seconds once per second (``_LastSecond``) rather than for every line.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from mode.utils.logging import DEFAULT_COLOR_FORMAT, DEFAULT_COLORS, ExtensionFormatter

__all__ = ["FIELDS", "TEXT_FORMAT", "JsonFormatter", "TextFormatter", "fields_of", "logging_config"]

#: The structured fields of a log line.
FIELDS = ("cafe", "date", "batch", "user", "attempt")
_INTEGERS = frozenset({"cafe", "user", "attempt"})
# `cafe=12`, `date=2026-11-25`, `batch=manual-1a2b`: the tagged form of every per-digest and per-user line.
_TAGGED = re.compile(r"\b(cafe|date|batch|user|attempt)=([^\s:,;()]+)")
# `cafe 12:`, `recommendations batch 2026-11-25-daily stalled`: the plain form, only for values holding a digit.
_PLAIN = re.compile(r"\b(cafe|batch|user) ([\w.:-]*\d[\w.-]*?)(?=[:\s,;]|$)")


def _typed(name: str, value: str) -> int | str:
    return int(value) if name in _INTEGERS and value.lstrip("-").isdigit() else value


def fields_of(message: str) -> dict[str, int | str]:
    """The structured fields written in ``message`` (the first of each; the tagged form wins)."""
    found: dict[str, int | str] = {}
    for pattern in (_TAGGED, _PLAIN):
        for name, value in pattern.findall(message):
            found.setdefault(name, _typed(name, value))
    return found


class _LastSecond:
    """The text of a whole second, made again only when asked for another second than the last one.

    What a line's time costs is mostly converting and formatting its whole seconds (``time.localtime``
    and ``strftime``, or a ``datetime``): the same for every line of a second. The pair is replaced as
    one, so threads sharing a formatter never see a second with another's text.
    """

    def __init__(self, make: Callable[[float], str]) -> None:
        self._make = make
        self._last: tuple[float, str] = (math.nan, "")  # nan equals no second

    def __call__(self, second: float) -> str:
        last, text = self._last
        if second != last:
            text = self._make(second)
            self._last = (second, text)
        return text


def _utc_seconds(second: float) -> str:
    return datetime.fromtimestamp(second, UTC).isoformat().removesuffix("+00:00")


class JsonFormatter(logging.Formatter):
    """A log record as one line of JSON: time, level, logger, message, the structured fields, the exception."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._seconds = _LastSecond(_utc_seconds)

    def _iso_time(self, created: float) -> str:
        """``datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")``, its seconds made once.

        ``fromtimestamp`` rounds to microseconds half to even, carrying into the second (CPython's
        ``_PyTime_DoubleToDenominator``; Python's ``round`` on the same double rounds the same way).
        """
        fraction, second = math.modf(created)
        micros = round(fraction * 1e6)
        if micros >= 1_000_000:
            second, micros = second + 1, micros - 1_000_000
        elif micros < 0:
            second, micros = second - 1, micros + 1_000_000
        return f"{self._seconds(second)}.{micros // 1000:03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        line: dict[str, Any] = {
            "time": self._iso_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        line.update(fields_of(message))
        line.update({name: getattr(record, name) for name in FIELDS if hasattr(record, name)})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


#: Faust's text line on stdout: its coloured format (``mode``'s) with the colours left out.
TEXT_FORMAT = "[%(asctime)s] [%(process)s] [%(levelname)s] %(message)s %(extra)s"


class _NotATerminal:
    def isatty(self) -> bool:
        return False


class TextFormatter(logging.Formatter):
    """Faust's text line, written without colorlog, for a stdout that is not a terminal.

    Faust's coloured formatter builds colorlog's escape-code maps and passes every argument through
    Faust's argument formatters for each line, then leaves the colours out when the output is not a
    terminal: the same line costs several times what a plain ``logging.Formatter`` takes. The only
    arguments Faust's formatters change are mappings and collections (topic and partition maps drawn as
    tables, at start and at rebalances): lines with such arguments still go through Faust's formatter,
    so every line reads as before.
    """

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        self._fausts = ExtensionFormatter(stream=_NotATerminal(), fmt=DEFAULT_COLOR_FORMAT, log_colors=DEFAULT_COLORS)
        self._seconds = _LastSecond(lambda second: time.strftime(self.default_time_format, self.converter(second)))

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """``logging.Formatter.formatTime``, the local time of each whole second formatted once.

        ``time.localtime`` reads the whole seconds of ``created`` (rounded down): one text per second (a
        ``time.tzset()`` at run time shows from the next second on).
        """
        if datefmt:
            return super().formatTime(record, datefmt)
        return self.default_msec_format % (self._seconds(math.floor(record.created)), record.msecs)

    def format(self, record: logging.LogRecord) -> str:
        args = record.args
        if isinstance(args, Mapping) or any(isinstance(arg, Mapping | set | list) for arg in args or ()):
            return self._fausts.format(record)
        record.extra = ", ".join(f"{k}={v!r}" for k, v in (record.__dict__.get("data") or {}).items())
        return super().format(record)


def logging_config(log_format: str, *, terminal: bool | None = None) -> dict[str, Any] | None:
    """Faust's ``logging_config`` for ``LOG_FORMAT``: its formatters made JSON, or its stdout's plain off a terminal.

    ``terminal``: whether stdout is one (default: asked). None (Faust's own, coloured) for text on a terminal;
    text to ``--logfile`` keeps Faust's plain formatter either way.
    """
    if log_format == "text":
        if terminal if terminal is not None else sys.stdout.isatty():
            return None
        return {"version": 1, "merge": True, "formatters": {"colored": {"()": f"{__name__}.TextFormatter"}}}
    json_formatter = {"()": f"{__name__}.JsonFormatter"}
    # `merge` keeps Faust's handlers (stdout, or --logfile) and replaces the formatters they name.
    return {"version": 1, "merge": True, "formatters": {"default": json_formatter, "colored": json_formatter}}
