from datetime import date
from decimal import Decimal

from agents.notifications.digest import (
    TELEGRAM_TEXT_LIMIT,
    CafeDigest,
    OrderLine,
    render_digest,
    skip_reason,
    telegram_length,
)


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
    assert text.startswith("<b>Orders for Cafe Bon</b>\nDate: 2026-11-25 · 2 orders")
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
        assert part.startswith(f"<b>Orders for Cafe Bon</b> (part {index}/{len(parts)})")
    assert all("Total:" not in part for part in parts[:-1])
    assert parts[-1].endswith("<b>Total: 27000.00</b>")
    joined = "\n\n".join(parts)
    # every block whole, each once, in order
    positions = [joined.index(f"{i}. <b>Person {i}</b>\n") for i in range(1, 61)]
    assert positions == sorted(positions)
    assert all(joined.count(f"<b>Person {i}</b>") == 1 for i in range(1, 61))


def test_worst_case_block_of_ampersands_still_fits():
    nasty = order(1, user_name="&" * 500, combo_name="<" * 500, items=tuple(["&" * 100] * 50), notes="&" * 5000)
    parts = render_digest(digest(nasty, nasty, cafe_name="&" * 500))
    assert len(parts) == 2
    assert all(telegram_length(p) <= TELEGRAM_TEXT_LIMIT for p in parts)


def test_utf16_length_counts_astral_characters_twice():
    assert telegram_length("😀a") == 3


def test_skip_reasons():
    assert skip_reason(None) == "cafe not found"
    assert skip_reason(digest(order(1), notifications_enabled=False)) == "notifications disabled"
    assert skip_reason(digest(order(1), chat_id=None)) == "cafe has no chat id"
    assert skip_reason(digest()) == "no orders"
    assert skip_reason(digest(order(1))) is None
