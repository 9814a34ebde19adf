"""Total decoding of JSON records: any bytes give a value or an :class:`InvalidEvent` with a reason.

The JSON is bounded before it is parsed (its size, its nesting depth; no ``NaN``/``Infinity``), and a
record's fields are checked against their types (:func:`decode_record`), so nothing else is ever raised.
"""

from __future__ import annotations

import json
import math
import types
from datetime import date, datetime
from enum import Enum
from typing import Any, TypeVar, Union, get_args, get_origin

import faust

__all__ = [
    "MAX_EVENT_BYTES",
    "MAX_NESTING",
    "MAX_TEXT",
    "InvalidEvent",
    "decode_record",
    "iso_date",
    "load_object",
    "optional_datetime",
    "positive_int",
    "record_of",
]

MAX_EVENT_BYTES = 64 * 1024
MIN_YEAR, MAX_YEAR = 2000, 2100
#: Arrays and objects nested deeper than this are refused before parsing (deep nesting exhausts the stack).
MAX_NESTING = 16
#: The longest string a record field takes, and the most items of a list field.
MAX_TEXT, MAX_ITEMS = 1000, 100

R = TypeVar("R", bound=faust.Record)


class InvalidEvent(ValueError):
    """An event that cannot be processed; the message says why."""


def _too_deep(raw: bytes | str, limit: int = MAX_NESTING) -> bool:
    """Arrays and objects nest deeper than ``limit`` outside strings (a linear scan, before parsing)."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    depth, in_string, escaped = 0, False, False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return False


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def load_object(raw: bytes | str | None, max_bytes: int = MAX_EVENT_BYTES) -> dict[str, Any]:
    """The JSON object in ``raw``; every way it can fail is an ``InvalidEvent`` with a reason."""
    if raw is None or len(raw) == 0:
        raise InvalidEvent("empty value")
    if not isinstance(raw, bytes | str):
        raise InvalidEvent(f"expected bytes, got {type(raw).__name__}")
    if len(raw) > max_bytes:
        raise InvalidEvent(f"value too large ({len(raw)} bytes)")
    if _too_deep(raw):
        raise InvalidEvent(f"not JSON: nested deeper than {MAX_NESTING}")
    try:
        obj = json.loads(raw, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise InvalidEvent("not JSON: not UTF-8") from None
    except json.JSONDecodeError:
        raise InvalidEvent("not JSON: JSONDecodeError") from None
    except (ValueError, RecursionError) as exc:  # NaN/Infinity, an integer of too many digits, a deep nest
        raise InvalidEvent(f"not JSON: {type(exc).__name__}: {str(exc)[:80]}") from None
    if not isinstance(obj, dict):
        raise InvalidEvent(f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _field_value(name: str, kind: Any, value: Any, max_text: int = MAX_TEXT) -> Any:
    """``value`` checked against the field's type (int, float, str, bool, a StrEnum, list[str], ``X | None``)."""
    if get_origin(kind) in (Union, types.UnionType):
        if value is None and type(None) in get_args(kind):
            return None
        [kind] = [k for k in get_args(kind) if k is not type(None)]
    if kind is bool:
        if not isinstance(value, bool):
            raise InvalidEvent(f"{name!r} must be true or false")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int) or not -(2**63) <= value < 2**63:
            raise InvalidEvent(f"{name!r} must be a 64-bit integer")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidEvent(f"{name!r} must be a finite number")
        return float(value)
    if kind is str:
        if not isinstance(value, str) or len(value) > max_text:
            raise InvalidEvent(f"{name!r} must be a string of at most {max_text} characters")
        return value
    if isinstance(kind, type) and issubclass(kind, Enum):
        try:
            return kind(value)
        except (ValueError, TypeError):
            raise InvalidEvent(f"{name!r} must be one of {', '.join(str(m.value) for m in kind)}") from None
    if get_origin(kind) is list:
        if not isinstance(value, list) or len(value) > MAX_ITEMS:
            raise InvalidEvent(f"{name!r} must be a list of at most {MAX_ITEMS} items")
        [item] = get_args(kind)
        return [_field_value(name, item, v, max_text) for v in value]
    raise TypeError(f"decode_record: field {name!r} has a type it cannot check: {kind!r}")


def decode_record(
    raw: bytes | str | None, cls: type[R], *, max_bytes: int = MAX_EVENT_BYTES, max_text: int = MAX_TEXT
) -> R:
    """The ``cls`` record in ``raw`` (JSON; Faust's metadata and unknown fields ignored), every field checked."""
    return record_of(load_object(raw, max_bytes), cls, max_text=max_text)


def record_of(obj: dict[str, Any], cls: type[R], *, max_text: int = MAX_TEXT) -> R:
    """The ``cls`` record of an object already loaded (``load_object``), every field checked."""
    values: dict[str, Any] = {}
    for name, kind in cls._options.fields.items():
        if name not in obj:
            if name not in cls._options.defaults:
                raise InvalidEvent(f"missing field {name!r}")
            continue
        values[name] = _field_value(name, kind, obj[name], max_text)
    return cls(**values)


def positive_int(obj: dict[str, Any], field: str) -> int:
    if field not in obj:
        raise InvalidEvent(f"missing field {field!r}")
    value = obj[field]
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEvent(f"{field!r} must be an integer, got {type(value).__name__}")
    if not 0 < value < 2**63:
        raise InvalidEvent(f"{field!r} out of range")
    return value


def iso_date(obj: dict[str, Any], field: str) -> str:
    if field not in obj:
        raise InvalidEvent(f"missing field {field!r}")
    value = obj[field]
    if not isinstance(value, str) or len(value) != 10:
        raise InvalidEvent(f"{field!r} must be a YYYY-MM-DD string")
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise InvalidEvent(f"{field!r} is not a valid date") from None
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        raise InvalidEvent(f"{field!r} out of range")
    return parsed.isoformat()


def optional_datetime(obj: dict[str, Any], field: str) -> str | None:
    value = obj.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise InvalidEvent(f"{field!r} must be an ISO-8601 datetime string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidEvent(f"{field!r} is not a valid ISO-8601 datetime") from None
    return parsed.isoformat()
