# ruff: noqa: RUF001  - the expected texts hold the multiplication sign and Cyrillic on purpose
"""The digest's rendering: summary, order blocks, total, escaping and splitting (English, bare prices)."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.notifications.digest import (
    TELEGRAM_TEXT_LIMIT,
    CafeDigest,
    OrderLine,
    render_digest,
    skip_reason,
    telegram_length,
)
from agents.notifications.i18n import DigestFormat
from streams.text import is_hidden

HEADER = "<b>Orders for Cafe Bon</b>\nDate: Wednesday, November 25, 2026"


def order(n: int, **overrides) -> OrderLine:
    fields = {
        "order_id": n,
        "user_name": f"User {n}",
        "combo_name": "Business lunch",
        "items": ("Borscht", "Compote"),
        "notes": None,
        "price": Decimal("450.00"),
    }
    fields.update(overrides)
    return OrderLine(**fields)


def digest(*orders: OrderLine, **overrides) -> CafeDigest:
    fields = {
        "cafe_id": 7,
        "cafe_name": "Cafe Bon",
        "chat_id": -100,
        "notifications_enabled": True,
        "order_date": date(2026, 11, 25),
        "orders": orders,
    }
    fields.update(overrides)
    return CafeDigest(**fields)


def test_single_message_has_cafe_date_every_order_field_and_total():
    d = digest(
        order(1, user_name="Alice", notes="no onions", price=Decimal("450.00")),
        order(2, user_name="Bob", combo_name="Light", items=("Salad",), price=Decimal("320.55")),
    )
    [text] = render_digest(d)
    assert text.startswith(
        f"{HEADER} · 2 orders\n\n"
        "<b>To prepare</b>\nBusiness lunch × 1\nLight × 1\nBorscht × 1\nCompote × 1\nSalad × 1\n\n1. <b>Alice</b>"
    )
    assert "1. <b>Alice</b>\nCombo: Business lunch — 450.00\nItems: Borscht, Compote\nNotes: <i>no onions</i>" in text
    assert "2. <b>Bob</b>\nCombo: Light — 320.55\nItems: Salad" in text
    assert "Notes" not in text.split("2. <b>Bob</b>")[1]
    assert text.endswith("<b>Total: 770.55</b>")
    assert text.index("Alice") < text.index("Bob")


def test_total_is_exact_to_the_cent():
    d = digest(*(order(i, price=Decimal("0.10")) for i in range(1, 31)), order(31, price=Decimal("99.99")))
    assert d.total == Decimal("102.99")
    assert render_digest(d)[-1].endswith("<b>Total: 102.99</b>")


def test_user_text_is_escaped_for_html():
    d = digest(order(1, user_name="<b>Eve</b> & co", notes="<script>", items=("A&B",)), cafe_name="R&D <Cafe>")
    [text] = render_digest(d)
    assert "&lt;b&gt;Eve&lt;/b&gt; &amp; co" in text
    assert "<i>&lt;script&gt;</i>" in text
    assert "A&amp;B" in text
    assert "R&amp;D &lt;Cafe&gt;" in text
    assert "<script>" not in text and "<b>Eve" not in text


def test_long_digest_splits_between_blocks_into_labelled_parts():
    orders = [order(i, notes="n" * 250, user_name=f"Person {i}") for i in range(1, 61)]
    parts = render_digest(digest(*orders))
    assert len(parts) > 1
    for index, part in enumerate(parts, start=1):
        assert telegram_length(part) <= TELEGRAM_TEXT_LIMIT
        assert part.startswith(f"<b>Orders for Cafe Bon</b> (part {index}/{len(parts)})\nDate: ")
    assert all("Total:" not in part for part in parts[:-1])
    assert parts[-1].endswith("<b>Total: 27000.00</b>")
    joined = "\n\n".join(parts)
    # every block whole, each once, in order
    positions = [joined.index(f"{i}. <b>Person {i}</b>\n") for i in range(1, 61)]
    assert positions == sorted(positions)
    assert all(joined.count(f"<b>Person {i}</b>") == 1 for i in range(1, 61))


@pytest.mark.parametrize("fmt", [DigestFormat(), DigestFormat("ru", "RUB")], ids=["en", "ru-RUB"])
def test_worst_case_block_of_ampersands_still_fits(fmt):
    nasty = order(1, user_name="&" * 500, combo_name="<" * 500, items=tuple(["&" * 100] * 50), notes="&" * 5000)
    parts = render_digest(digest(nasty, nasty, cafe_name="&" * 500), fmt=fmt)
    # the summary leaves no room for a worst-case block in part 1: each block gets a part of its own
    assert len(parts) == 3
    assert "1. <b>" not in parts[0] and "1. <b>" in parts[1] and "2. <b>" in parts[2]
    assert all(telegram_length(p) <= TELEGRAM_TEXT_LIMIT for p in parts)


def test_utf16_length_counts_astral_characters_twice():
    assert telegram_length("😀a") == 3


def test_skip_reasons():
    assert skip_reason(None) == "cafe not found"
    assert skip_reason(digest(order(1), notifications_enabled=False)) == "notifications disabled"
    assert skip_reason(digest(order(1), chat_id=None)) == "cafe has no chat id"
    assert skip_reason(digest()) == "no orders"
    assert skip_reason(digest(order(1))) is None


def summary_lines(part: str) -> list[str]:
    """The lines of the preparation summary of a part (empty when it has none)."""
    found = re.search(r"<b>To prepare</b>\n(.*?)(?:\n\n|$)", part, flags=re.S)
    return found.group(1).split("\n") if found else []


def test_summary_counts_combos_then_items_most_ordered_first_ties_by_name():
    d = digest(
        order(1, combo_name="Light", items=("Salad", "Borscht")),
        order(2, combo_name="Business lunch", items=("Borscht", "Borscht")),  # an item ordered twice counts twice
        order(3, combo_name="Vegan", items=()),
        order(4, combo_name="Light", items=("compote", "Salad")),
        order(5, combo_name="Business lunch", items=("Borscht",)),
        order(6, combo_name="<Kids> & co", items=("Apple",)),
    )
    [text] = render_digest(d)
    assert summary_lines(text) == [
        "Business lunch × 2",
        "Light × 2",
        "&lt;Kids&gt; &amp; co × 1",
        "Vegan × 1",
        "Borscht × 4",
        "Salad × 2",
        "Apple × 1",
        "compote × 1",
    ]
    assert text.index("<b>To prepare</b>") < text.index("1. <b>User 1</b>")


def test_one_order_is_singular():
    [text] = render_digest(digest(order(1)))
    assert text.startswith(f"{HEADER} · 1 order\n")


def hundreds_of_items(orders: int, per_order: int) -> list[OrderLine]:
    """Orders each with ``per_order`` distinct items (``Item n``), and item 0 in every order."""
    return [
        order(i, items=("Item 0", *(f"Item {i * per_order + k}" for k in range(1, per_order))), notes="n" * 250)
        for i in range(1, orders + 1)
    ]


def test_summary_of_hundreds_of_distinct_items_is_clipped_to_fit_part_one():
    orders = hundreds_of_items(5, 100)
    [first, *rest] = render_digest(digest(*orders))
    lines = summary_lines(first)
    assert lines[:2] == ["Business lunch × 5", "Item 0 × 5"]
    assert re.fullmatch(r"… and \d+ more", lines[-1])
    shown = lines[:-1]
    distinct = 1 + 1 + 5 * 99  # the combo, item 0 and the others
    assert len(shown) + int(lines[-1].split()[2]) == distinct
    assert len(shown) > 100  # clipped by size, not by a small count
    assert telegram_length(first) <= TELEGRAM_TEXT_LIMIT
    assert all("To prepare" not in part for part in rest)


def test_split_budget_counts_the_summary_in_part_one():
    orders = hundreds_of_items(60, 8)  # a long summary (422 lines) and 60 blocks of 250-character notes
    parts = render_digest(digest(*orders))
    assert all(telegram_length(part) <= TELEGRAM_TEXT_LIMIT for part in parts)
    assert summary_lines(parts[0]) and not any(summary_lines(part) for part in parts[1:])
    joined = "\n\n".join(parts)
    positions = [joined.index(f"{i}. <b>User {i}</b>\n") for i in range(1, 61)]
    assert positions == sorted(positions)
    assert all(joined.count(f"<b>User {i}</b>") == 1 for i in range(1, 61))
    # part 1 is filled close to the limit: the summary is not budgeted as if it were a whole part
    assert telegram_length(parts[0]) > TELEGRAM_TEXT_LIMIT - 400


def sixty_orders() -> list[OrderLine]:
    return [
        order(
            i,
            combo_name="Light" if i % 3 == 0 else "Business lunch",
            items=("Borscht", *(("Compote",) if i % 2 else ()), *(("Caesar salad",) if i % 5 == 0 else ())),
            notes="please " * 40,
        )
        for i in range(1, 61)
    ]


def test_sixty_orders_start_with_their_counts_and_split_within_the_limit():
    parts = render_digest(digest(*sixty_orders()))
    assert len(parts) > 1
    assert parts[0].startswith(
        f"<b>Orders for Cafe Bon</b> (part 1/{len(parts)})\nDate: Wednesday, November 25, 2026 · 60 orders\n\n"
        "<b>To prepare</b>\nBusiness lunch × 40\nLight × 20\nBorscht × 60\nCompote × 30\nCaesar salad × 12\n\n"
        "1. <b>User 1</b>\n"
    )
    assert all(telegram_length(part) <= TELEGRAM_TEXT_LIMIT for part in parts)
    assert parts[-1].endswith("<b>Total: 27000.00</b>")


HIDDEN = "\u202e\u200b\x07\x1b\ufeff\u2066\U000e0041"


def test_hidden_characters_never_reach_the_message_and_escaping_stays():
    hostile = order(
        1,
        user_name=f"Ali{HIDDEN}ce <admin>",
        combo_name=f"Business{HIDDEN} lunch",
        items=(f"Bor{HIDDEN}scht", HIDDEN),
        notes=f"no\nonions{HIDDEN} & no <b>garlic</b>",
    )
    [text] = render_digest(digest(hostile, order(2), cafe_name=f"Cafe{HIDDEN} Bon"))
    assert not [c for c in text if c in HIDDEN]
    assert text.startswith(HEADER)
    assert "1. <b>Alice &lt;admin&gt;</b>" in text
    assert "Business lunch \u00d7 2" in text and "Borscht \u00d7 2" in text  # cleaned names count together
    assert "Items: Borscht\n" in text  # an item that was nothing but hidden characters is left out
    assert "Notes: <i>no onions &amp; no &lt;b&gt;garlic&lt;/b&gt;</i>" in text  # a newline is a space


def test_a_note_of_nothing_but_hidden_characters_is_no_note():
    [text] = render_digest(digest(order(1, notes=f"{HIDDEN}\n{HIDDEN}")))
    assert "Notes" not in text


@given(st.text(), st.text(), st.text(), st.lists(st.text(), max_size=3), st.text())
def test_no_control_format_or_tag_character_from_any_user_text(cafe, user, combo, items, notes):
    one = order(1, user_name=user, combo_name=combo, items=tuple(items), notes=notes)
    for part in render_digest(digest(one, cafe_name=cafe)):
        assert not [c for c in part if is_hidden(c) and c != "\n"]
        assert "\n\n\n" not in part  # no user-made line breaks between the digest's own
