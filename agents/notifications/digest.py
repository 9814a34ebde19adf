"""The order digest: pure data and HTML rendering, split under Telegram's limit.

The first part opens with a preparation summary (every combo, then every item,
with its count, clipped to fit); labels, prices and the date follow a
``DigestFormat`` (language and currency: ``agents.notifications.i18n``).

User text (names, notes, combo and item names) is cleaned first (``streams.text.one_line``:
no control, bidi, zero-width or tag character, and one line: a newline in a note is a space,
so no user can lay out lines of their own), then clipped and HTML-escaped, with caps chosen so
that even a block of nothing but ``&`` fits in one message: a digest splits only between order
blocks, never inside one.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from agents.notifications.i18n import DEFAULT_FORMAT, DigestFormat
from streams.text import one_line

__all__ = [
    "TELEGRAM_TEXT_LIMIT",
    "CafeDigest",
    "OrderLine",
    "render_digest",
    "skip_reason",
    "telegram_length",
]

TELEGRAM_TEXT_LIMIT = 4096
# Caps on user text, in characters before escaping (escaping grows text up to 5x).
NAME_CAP = 64
COMBO_CAP = 64
ITEM_CAP = 64  # one item's name in the summary
ITEMS_CAP = 200
NOTES_CAP = 300
ELLIPSIS = "…"
TIMES = "\u00d7"  # the multiplication sign (U+00D7) of the summary lines


@dataclass(frozen=True, slots=True)
class OrderLine:
    order_id: int
    user_name: str
    combo_name: str
    items: tuple[str, ...]
    notes: str | None
    price: Decimal


@dataclass(frozen=True, slots=True)
class CafeDigest:
    cafe_id: int
    cafe_name: str
    chat_id: int | None
    notifications_enabled: bool
    order_date: date
    orders: tuple[OrderLine, ...]

    @property
    def total(self) -> Decimal:
        return sum((o.price for o in self.orders), Decimal("0.00"))


def skip_reason(digest: CafeDigest | None) -> str | None:
    """Why nothing is to be sent for this digest, or None when it should be sent."""
    if digest is None:
        return "cafe not found"
    if not digest.notifications_enabled:
        return "notifications disabled"
    if digest.chat_id is None:
        return "cafe has no chat id"
    if not digest.orders:
        return "no orders"
    return None


def telegram_length(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units), measured on the raw HTML (an upper bound)."""
    return len(text.encode("utf-16-le")) // 2


def _clip(text: str, cap: int) -> str:
    text = one_line(text)  # no hidden characters, no user-made layout
    return text if len(text) <= cap else text[: cap - 1].rstrip() + ELLIPSIS


def _escape(text: str, cap: int) -> str:
    return html.escape(_clip(text, cap), quote=False)


def _tally(names: Iterable[str]) -> list[tuple[str, int]]:
    """Each (cleaned, non-blank) name with its count, most counted first, ties by name."""
    counts = Counter(name for name in map(one_line, names) if name)
    return sorted(counts.items(), key=lambda pair: (-pair[1], pair[0].casefold(), pair[0]))


def _summary(digest: CafeDigest, fmt: DigestFormat, budget: int) -> str:
    """Every combo with its count, then every item, as ``NAME TIMES COUNT`` lines, clipped to ``budget``."""
    lines = [
        f"{_escape(name, cap)} {TIMES} {count}"
        for names, cap in (
            ((o.combo_name for o in digest.orders), COMBO_CAP),
            ((item for o in digest.orders for item in o.items), ITEM_CAP),
        )
        for name, count in _tally(names)
    ]
    title = fmt.catalogue.summary_title
    used, kept = telegram_length(title), 0
    # Keep the most lines that fit with the "… and N more" line their clipping needs.
    for shown, line in enumerate(lines, start=1):
        used += telegram_length(line) + 1
        rest = len(lines) - shown
        more = telegram_length(fmt.plural(fmt.catalogue.summary_more, rest)) + 1 if rest else 0
        if used + more > budget:
            break
        kept = shown
    rest = len(lines) - kept
    tail = [fmt.plural(fmt.catalogue.summary_more, rest)] if rest else []
    return "\n".join([title, *lines[:kept], *tail])


def _order_block(number: int, order: OrderLine, fmt: DigestFormat) -> str:
    labels = fmt.catalogue
    lines = [
        f"{number}. <b>{_escape(order.user_name, NAME_CAP)}</b>",
        labels.combo.format(combo=_escape(order.combo_name, COMBO_CAP), price=fmt.money(order.price)),
    ]
    if items := [name for name in map(one_line, order.items) if name]:
        lines.append(labels.items.format(items=_escape(", ".join(items), ITEMS_CAP)))
    if order.notes and (notes := one_line(order.notes)):
        lines.append(labels.notes.format(notes=_escape(notes, NOTES_CAP)))
    return "\n".join(lines)


def _header(digest: CafeDigest, fmt: DigestFormat, part: int, parts: int) -> str:
    labels, cafe = fmt.catalogue, _escape(digest.cafe_name, NAME_CAP)
    title = labels.title_part.format(cafe=cafe, part=part, parts=parts) if parts > 1 else labels.title.format(cafe=cafe)
    return title + "\n" + fmt.plural(labels.date_line, len(digest.orders), date=fmt.day(digest.order_date))


def render_digest(
    digest: CafeDigest, limit: int = TELEGRAM_TEXT_LIMIT, *, fmt: DigestFormat = DEFAULT_FORMAT
) -> list[str]:
    """Render the digest as one or more messages, each within ``limit``, in ``fmt``'s language and currency.

    The first part opens with the preparation summary; orders keep their given
    order and numbering; every part has the header with a ``(part i/n)`` label
    when split; the total closes the last part.
    """
    blocks = [_order_block(i, order, fmt) for i, order in enumerate(digest.orders, start=1)]
    footer = fmt.catalogue.total.format(total=fmt.money(digest.total))
    # Budget with the widest label a split could need (the summary may fill part 1 alone),
    # and the footer reserved in every part; 2 per blank-line separator.
    most = len(blocks) + 1
    budget = limit - telegram_length(_header(digest, fmt, most, most)) - telegram_length(footer) - 2
    summary = _summary(digest, fmt, budget - 2)
    groups: list[list[str]] = [[summary]]
    used = telegram_length(summary) + 2
    for block in blocks:
        size = telegram_length(block) + 2
        if used + size > budget:
            groups.append([])
            used = 0
        groups[-1].append(block)
        used += size
    parts = []
    for index, group in enumerate(groups, start=1):
        sections = [_header(digest, fmt, index, len(groups)), *group]
        if index == len(groups):
            sections.append(footer)
        parts.append("\n\n".join(sections))
    return parts
