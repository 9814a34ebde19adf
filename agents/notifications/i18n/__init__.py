"""The digest's language and currency: a validated ``DigestFormat`` and the locale-aware formatting it gives.

Labels come from one typed catalogue per language (``en``, ``ru``); plural forms follow
Babel's CLDR rules, prices Babel's currency formats and dates Babel's ``full`` date format.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache

from babel import Locale
from babel.dates import format_date
from babel.numbers import format_currency, list_currencies

from agents.notifications.i18n.catalogue import Catalogue, Plural
from agents.notifications.i18n.en import EN
from agents.notifications.i18n.ru import RU

__all__ = ["CATALOGUES", "DEFAULT_FORMAT", "Catalogue", "DigestFormat", "Plural", "digest_format_from"]

CATALOGUES: dict[str, Catalogue] = {"en": EN, "ru": RU}


@cache
def _locale(language: str) -> Locale:
    return Locale.parse(language)


@dataclass(frozen=True, slots=True)
class DigestFormat:
    """The language of the digest's labels and the ISO 4217 currency of its prices (None: bare numbers)."""

    language: str = "en"
    currency: str | None = None

    def __post_init__(self) -> None:
        if self.language not in CATALOGUES:
            raise ValueError(f"DIGEST_LANGUAGE must be one of {', '.join(CATALOGUES)}, got {self.language!r}")
        if self.currency is not None and self.currency not in list_currencies():
            raise ValueError(f"DIGEST_CURRENCY must be an ISO 4217 code, got {self.currency!r}")

    @property
    def catalogue(self) -> Catalogue:
        return CATALOGUES[self.language]

    def money(self, amount: Decimal) -> str:
        """``amount`` in the currency for the locale (``1 220,50 ₽``), or bare (``1220.50``) without one."""
        if self.currency is None:
            return f"{amount.quantize(Decimal('0.01')):.2f}"
        return format_currency(amount, self.currency, locale=_locale(self.language))

    def day(self, value: date) -> str:
        """``value`` in the locale's full date format (``Wednesday, November 25, 2026``)."""
        return format_date(value, format="full", locale=_locale(self.language))

    def plural(self, sentence: Plural, count: int, **values: object) -> str:
        """The form of ``sentence`` that ``count`` takes in this language, filled in."""
        form = sentence.pick(_locale(self.language).plural_form(count))
        return form.format(count=count, **values)


DEFAULT_FORMAT = DigestFormat()


def digest_format_from(language: str, currency: str) -> DigestFormat:
    """The format the settings ask for (``DIGEST_LANGUAGE``, ``DIGEST_CURRENCY``; empty currency: none).

    Raises ValueError with one line naming the variable when either is unknown.
    """
    code = currency.strip().upper()
    return DigestFormat(language.strip().lower(), code or None)
