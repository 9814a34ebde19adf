"""The digest in English."""

from __future__ import annotations

from agents.notifications.i18n.catalogue import Catalogue, Plural

__all__ = ["EN"]

EN = Catalogue(
    title="<b>Orders for {cafe}</b>",
    title_part="<b>Orders for {cafe}</b> (part {part}/{parts})",
    date_line=Plural(one="Date: {date} · {count} order", other="Date: {date} · {count} orders"),
    summary_title="<b>To prepare</b>",
    summary_more=Plural(other="… and {count} more"),
    combo="Combo: {combo} — {price}",
    items="Items: {items}",
    notes="Notes: <i>{notes}</i>",
    total="<b>Total: {total}</b>",
)
