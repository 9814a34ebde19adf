"""The order digest: pure data and HTML rendering, split under Telegram's limit.

User text (names, notes, combo and item names) is clipped first and then
HTML-escaped, with caps chosen so that even a block of nothing but ``&`` fits in
one message: a digest splits only between order blocks, never inside one.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

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
ITEMS_CAP = 200
NOTES_CAP = 300
ELLIPSIS = "…"


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
    text = " ".join(text.split())  # one line: no user-made layout
    return text if len(text) <= cap else text[: cap - 1].rstrip() + ELLIPSIS


def _escape(text: str, cap: int) -> str:
    return html.escape(_clip(text, cap), quote=False)


def _money(amount: Decimal) -> str:
    return f"{amount.quantize(Decimal('0.01')):.2f}"


def _order_block(number: int, order: OrderLine) -> str:
    lines = [
        f"{number}. <b>{_escape(order.user_name, NAME_CAP)}</b>",
        f"Combo: {_escape(order.combo_name, COMBO_CAP)} — {_money(order.price)}",
    ]
    if order.items:
        lines.append(f"Items: {_escape(', '.join(order.items), ITEMS_CAP)}")
    if order.notes and order.notes.strip():
        lines.append(f"Notes: <i>{_escape(order.notes, NOTES_CAP)}</i>")
    return "\n".join(lines)


def _header(digest: CafeDigest, part: int, parts: int) -> str:
    label = f" (part {part}/{parts})" if parts > 1 else ""
    return (
        f"<b>Orders for {_escape(digest.cafe_name, NAME_CAP)}</b>{label}\n"
        f"Date: {digest.order_date.isoformat()} · {len(digest.orders)} orders"
    )


def _footer(digest: CafeDigest) -> str:
    return f"<b>Total: {_money(digest.total)}</b>"


def render_digest(digest: CafeDigest, limit: int = TELEGRAM_TEXT_LIMIT) -> list[str]:
    """Render the digest as one or more messages, each within ``limit``.

    Orders keep their given order and numbering; every part has the header with
    a ``(part i/n)`` label when split; the total closes the last part.
    """
    blocks = [_order_block(i, order) for i, order in enumerate(digest.orders, start=1)]
    footer = _footer(digest)
    # Budget with the widest label a split could need, and the footer reserved in every part.
    widest_header = telegram_length(_header(digest, len(blocks) or 1, len(blocks) or 1))
    budget = limit - widest_header - telegram_length(footer) - 4  # the blank-line separators
    groups: list[list[str]] = [[]]
    used = 0
    for block in blocks:
        size = telegram_length(block) + 2
        if groups[-1] and used + size > budget:
            groups.append([])
            used = 0
        groups[-1].append(block)
        used += size
    parts = []
    for index, group in enumerate(groups, start=1):
        sections = [_header(digest, index, len(groups)), *group]
        if index == len(groups):
            sections.append(footer)
        parts.append("\n\n".join(sections))
    return parts
