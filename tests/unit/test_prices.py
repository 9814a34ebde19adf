"""The one price parser: what a NUMERIC column may hold, and what counts as a usable price."""

from __future__ import annotations

from decimal import Decimal

import pytest

from models.db import parse_price


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("450.50"), Decimal("450.50")),
        ("12.00", Decimal("12.00")),
        (7, Decimal("7")),
        (0, Decimal("0")),
        (None, None),
        (True, None),
        ("abc", None),
        (Decimal("NaN"), None),
        (Decimal("Infinity"), None),
        (Decimal("-1"), None),
    ],
)
def test_parse_price(value: object, expected: Decimal | None) -> None:
    assert parse_price(value) == expected
