"""HTML building blocks of the console (pure): escaping, times, tables that stack on a phone, the page frame.

Every value that comes from data goes through :func:`esc` (:func:`html.escape`); the only markup is
this package's own.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from agents.console.style import CSS

__all__ = ["badge", "csrf_field", "document", "esc", "moment", "table"]

SECTIONS = (("digests", "Digests"), ("batches", "Batches"), ("gemini", "Gemini keys"),
            ("telegram", "Telegram budget"), ("dead-letters", "Dead letters"))  # fmt: skip


def esc(value: object) -> str:
    """Text for HTML (content or a quoted attribute); None is empty."""
    return "" if value is None else html.escape(str(value))


def moment(ts: float | None, zone: ZoneInfo, now: float) -> str:
    """A time in ``zone``: the clock alone when it is the same day as ``now``."""
    if ts is None:
        return ""
    at, today = datetime.fromtimestamp(ts, zone), datetime.fromtimestamp(now, zone)
    return at.strftime("%H:%M:%S" if at.date() == today.date() else "%Y-%m-%d %H:%M")


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, numeric: Iterable[int] = ()) -> str:
    """A table that stacks into cards on a phone; cells are HTML already (escape data before)."""
    right = set(numeric)
    head = "".join(f"<th{' class=num' if i in right else ''}>{esc(h)}</th>" for i, h in enumerate(headers))
    body = "".join(
        "<tr>"
        + "".join(
            f'<td data-label="{esc(headers[i])}"{" class=num" if i in right else ""}>{cell}</td>'
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f'<table class="stack"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def csrf_field(csrf: str | None) -> str:
    """The hidden CSRF field of a form that changes something (None: the request came with a bearer token)."""
    return "" if csrf is None else f'<input type="hidden" name="csrf" value="{esc(csrf)}">'


def document(title: str, subtitle: str, body: str, csrf: str | None = None) -> str:
    """A whole page: head, header bar, navigation (with *Sign out* for a signed-in browser) and ``body``."""
    nav = "".join(f'<a href="/ops/#{anchor}">{name}</a>' for anchor, name in SECTIONS)
    if csrf is not None:
        nav += f'<form class="signout" method="post" action="/signout/">{csrf_field(csrf)}<button>Sign out</button>'
        nav += "</form>"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header>"
        f'<nav>{nav}<a href="/ops/">Refresh</a></nav><main>{body}</main></body></html>'
    )


def badge(state: object) -> str:
    return f'<span class="badge {esc(state)}">{esc(state)}</span>'
