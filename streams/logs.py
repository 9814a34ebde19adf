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
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping
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


class JsonFormatter(logging.Formatter):
    """A log record as one line of JSON: time, level, logger, message, the structured fields, the exception."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
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
