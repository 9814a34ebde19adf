# ruff: noqa: RUF001  - the expected texts hold the multiplication sign and Cyrillic on purpose
"""The digest in each language and currency: catalogues, plurals, prices, dates and the settings' validation."""

from __future__ import annotations

import dataclasses
import string
from decimal import Decimal

import pytest
from babel import Locale

from agents.notifications.digest import TELEGRAM_TEXT_LIMIT, render_digest, telegram_length
from agents.notifications.i18n import CATALOGUES, DigestFormat, Plural, digest_format_from
from tests.unit.test_digest import digest, hundreds_of_items, order, sixty_orders

RU_RUB = DigestFormat("ru", "RUB")
NBSP, NNBSP = "\xa0", "\u202f"  # Babel's spaces in numbers and dates


def three_orders():
    return digest(
        order(1, user_name="Алиса", notes="без лука"),
        order(2, combo_name="Light", items=("Salad",), price=Decimal("320.55")),
        order(3),
    )


def test_russian_digest_has_every_label_in_russian():
    [text] = render_digest(three_orders(), fmt=RU_RUB)
    assert text.startswith(
        f"<b>Заказы: Cafe Bon</b>\nДата: среда, 25 ноября 2026{NNBSP}г. · 3 заказа\n\n"
        "<b>Приготовить</b>\nBusiness lunch × 2\nLight × 1\nBorscht × 2\nCompote × 2\nSalad × 1\n\n"
    )
    assert (
        f"1. <b>Алиса</b>\nКомбо: Business lunch — 450,00{NBSP}₽\nБлюда: Borscht, Compote\nКомментарий: <i>без лука</i>"
    ) in text
    assert text.endswith(f"<b>Итого: 1{NBSP}220,55{NBSP}₽</b>")
    for english in ("Orders", "Date", "To prepare", "Combo", "Items", "Notes", "Total"):
        assert english not in text


def test_english_digest_with_a_currency():
    [text] = render_digest(three_orders(), fmt=DigestFormat("en", "USD"))
    assert "Combo: Light — $320.55\nItems: Salad" in text
    assert text.endswith("<b>Total: $1,220.55</b>")


def test_split_russian_digest_labels_its_parts_and_stays_within_the_limit():
    parts = render_digest(digest(*sixty_orders()), fmt=RU_RUB)
    assert len(parts) > 1
    for index, part in enumerate(parts, start=1):
        assert part.startswith(f"<b>Заказы: Cafe Bon</b> (часть {index}/{len(parts)})\nДата: ")
        assert telegram_length(part) <= TELEGRAM_TEXT_LIMIT
    assert "<b>Приготовить</b>\nBusiness lunch × 40\nLight × 20\nBorscht × 60\nCompote × 30\n" in parts[0]
    assert parts[-1].endswith(f"<b>Итого: 27{NBSP}000,00{NBSP}₽</b>")


def test_russian_clipped_summary_says_how_many_lines_are_left_out():
    [first, *_] = render_digest(digest(*hundreds_of_items(5, 100)), fmt=RU_RUB)
    last = first.split("\n\n")[1].split("\n")[-1]
    assert last.startswith("… и ещё ") and last.endswith(("позиция", "позиции", "позиций"))
    assert telegram_length(first) <= TELEGRAM_TEXT_LIMIT


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (1, "1 заказ"),
        (2, "2 заказа"),
        (3, "3 заказа"),
        (4, "4 заказа"),
        (5, "5 заказов"),
        (11, "11 заказов"),
        (12, "12 заказов"),
        (21, "21 заказ"),
        (22, "22 заказа"),
        (25, "25 заказов"),
        (101, "101 заказ"),
        (111, "111 заказов"),
    ],
)
def test_russian_plural_forms(count, expected):
    line = RU_RUB.plural(CATALOGUES["ru"].date_line, count, date="d")
    assert line == f"Дата: d · {expected}"


@pytest.mark.parametrize(("count", "expected"), [(1, "1 позиция"), (3, "3 позиции"), (7, "7 позиций")])
def test_russian_plural_of_the_clipped_lines(count, expected):
    assert RU_RUB.plural(CATALOGUES["ru"].summary_more, count) == f"… и ещё {expected}"


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        (DigestFormat("ru", "RUB"), f"1{NBSP}220,50{NBSP}₽"),
        (DigestFormat("en", "RUB"), "RUB1,220.50"),
        (DigestFormat("en", "USD"), "$1,220.50"),
        (DigestFormat("en"), "1220.50"),
        (DigestFormat("ru"), "1220.50"),  # no currency: today's bare numbers in every language
    ],
    ids=["ru-RUB", "en-RUB", "en-USD", "en-none", "ru-none"],
)
def test_currency_formatting(fmt, expected):
    assert fmt.money(Decimal("1220.5")) == expected


@pytest.mark.parametrize(
    ("language", "currency", "expected"),
    [
        ("en", "", DigestFormat("en", None)),
        (" RU ", " rub ", DigestFormat("ru", "RUB")),
        ("ru", "EUR", DigestFormat("ru", "EUR")),
    ],
)
def test_format_from_settings(language, currency, expected):
    assert digest_format_from(language, currency) == expected


@pytest.mark.parametrize(
    ("language", "currency", "message"),
    [
        ("de", "", "DIGEST_LANGUAGE must be one of en, ru, got 'de'"),
        ("", "", "DIGEST_LANGUAGE must be one of en, ru, got ''"),
        ("en", "XYZ", "DIGEST_CURRENCY must be an ISO 4217 code, got 'XYZ'"),
        ("ru", "rubles", "DIGEST_CURRENCY must be an ISO 4217 code, got 'RUBLES'"),
    ],
)
def test_invalid_settings_fail_with_one_line_naming_the_variable(language, currency, message):
    with pytest.raises(ValueError) as raised:
        digest_format_from(language, currency)
    assert str(raised.value) == message


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@pytest.mark.parametrize("language", sorted(CATALOGUES))
def test_every_catalogue_fills_the_same_placeholders_in_the_plural_forms_its_language_has(language):
    catalogue, english = CATALOGUES[language], CATALOGUES["en"]
    tags = Locale.parse(language).plural_form.tags
    for field in dataclasses.fields(catalogue):
        value, reference = getattr(catalogue, field.name), getattr(english, field.name)
        if isinstance(value, Plural):
            forms = {tag: getattr(value, tag) for tag in ("one", "few", "many") if getattr(value, tag)}
            assert set(forms) <= tags, field.name
            forms = [*forms.values(), value.other]
            reference = reference.other
        else:
            forms = [value]
        assert all(placeholders(form) == placeholders(reference) for form in forms), field.name


def test_russian_sentences_with_a_count_have_every_russian_plural_form():
    plurals = [
        v for f in dataclasses.fields(CATALOGUES["ru"]) if isinstance(v := getattr(CATALOGUES["ru"], f.name), Plural)
    ]
    assert plurals
    assert all(getattr(plural, tag) for plural in plurals for tag in Locale.parse("ru").plural_form.tags)
