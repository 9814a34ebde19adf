"""The shape of a digest's message catalogue: whole sentences with named placeholders."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Catalogue", "Plural"]


@dataclass(frozen=True, slots=True)
class Plural:
    """One sentence per CLDR plural category the language uses; ``other`` is required."""

    other: str
    one: str | None = None
    few: str | None = None
    many: str | None = None

    def pick(self, category: str) -> str:
        """The sentence of ``category`` (as Babel's plural rule names it), else ``other``."""
        return getattr(self, category, None) or self.other


@dataclass(frozen=True, slots=True)
class Catalogue:
    """Every label of the digest in one language. Templates may hold HTML markup; values arrive escaped."""

    title: str  # {cafe}
    title_part: str  # {cafe} {part} {parts}
    date_line: Plural  # {date} {count}: the number of orders
    summary_title: str
    summary_more: Plural  # {count}: summary lines left out
    combo: str  # {combo} {price}
    items: str  # {items}
    notes: str  # {notes}
    total: str  # {total}
