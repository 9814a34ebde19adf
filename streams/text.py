"""Platform text hygiene: what outside text (names, notes, labels) may carry into a message or a prompt.

``clean_text`` removes every control, format and surrogate character (Unicode categories Cc, Cf, Cs:
BEL, ESC, NUL, C1 controls, bidi overrides and isolates such as U+202E, zero-width characters such as
U+200B and U+FEFF, the soft hyphen) and the whole tag block (U+E0000 to U+E007F); the whitespace among
them (``\\n``, ``\\r``, ``\\t``, ``\\v``, ``\\f``, U+001C to U+001F, U+0085) and the line and paragraph
separators (U+2028, U+2029) become a space, so words a newline parted stay apart. ``one_line`` also
collapses whitespace runs and strips: user text is shown on one line, never with a layout of its own.

Both are pure and idempotent; text with nothing to clean (``str.isprintable``) is returned as it is.
A side effect worth knowing: emoji joined by U+200D (ZWJ) fall apart into their parts, and the
subdivision flags built from tags show as a plain black flag.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

__all__ = ["clean_text", "is_hidden", "one_line"]

_REMOVED = frozenset({"Cc", "Cf", "Cs"})
_SEPARATORS = frozenset({"Zl", "Zp"})
_TAGS = range(0xE0000, 0xE0080)


@lru_cache(maxsize=4096)
def _replacement(char: str) -> str:
    """What ``char`` becomes: itself, a space (whitespace controls and separators) or nothing."""
    category = unicodedata.category(char)
    if category in _SEPARATORS or (category == "Cc" and char.isspace()):
        return " "
    if category in _REMOVED or ord(char) in _TAGS:
        return ""
    return char


def is_hidden(char: str) -> bool:
    """Whether ``char`` is one ``clean_text`` removes or replaces (a control, format, surrogate or tag)."""
    return _replacement(char) != char


def clean_text(text: str) -> str:
    """``text`` without control, format, surrogate and tag characters (whitespace ones become a space)."""
    if text.isprintable():  # the common case, at C speed: no Cc, Cf, Cs, Zl, Zp, no unassigned tag
        return text
    return "".join(map(_replacement, text))


def one_line(text: str) -> str:
    """``clean_text``, then every whitespace run made one space, stripped."""
    return " ".join(clean_text(text).split())
