"""The console's main page, rendered on the server from the view models (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from agents.console.markup import badge, csrf_field, document, esc, moment, table
from agents.console.model import STATUSES, BatchRow, DigestRow, Letters

__all__ = ["ConsolePage", "render_console"]


@dataclass(frozen=True, slots=True)
class ConsolePage:
    """Everything the main page shows."""

    app_id: str
    worker: str
    now: float
    zone: ZoneInfo
    day: str
    status: str | None
    query: str
    digests: list[DigestRow]  # the selected ones
    counts: dict[str, int]  # by status, of the whole day
    batches: list[BatchRow]
    prices_known: bool
    keys: dict[str, Any] | None
    budget: dict[str, object] | None
    letters: Letters | None
    csrf: str | None  # what the forms carry (None: asked with a bearer token)
    notes: list[str]


def _link(page: ConsolePage, status: str | None) -> str:
    query = {"day": page.day, "q": page.query} | ({"status": status} if status else {})
    return "/ops/?" + urlencode({k: v for k, v in query.items() if v}) + "#digests"


def _digests(page: ConsolePage) -> str:
    total = sum(page.counts.values())
    chips = [(None, f"all {total}")] + [(s, f"{s} {page.counts[s]}") for s in STATUSES]
    chip_html = "".join(
        f'<a class="chip{" on" if status == page.status else ""}" href="{esc(_link(page, status))}">{esc(text)}</a>'
        for status, text in chips
    )
    options = "".join(
        f'<option value="{s}"{" selected" if s == page.status else ""}>{s}</option>' for s in ("", *STATUSES)
    )
    form = (
        '<form class="filters" method="get" action="/ops/#digests">'
        f'<label>Day<input type="date" name="day" value="{esc(page.day)}"></label>'
        f'<label>Status<select name="status">{options}</select></label>'
        f'<label>Cafe (id or name)<input type="search" name="q" value="{esc(page.query)}"></label>'
        "<button>Show</button></form>"
    )

    def detail(row: DigestRow) -> str:
        text = f'<span class="error">{esc(row.detail)}</span>' if row.status == "failed" else esc(row.detail)
        if row.status == "retrying" and row.next_attempt_at is not None:
            text += f"<br>next attempt {esc(moment(row.next_attempt_at, page.zone, page.now))}"
        return text

    rows = [
        [
            f"{esc(row.cafe_name) if row.cafe_name is not None else '<span class=muted>unknown cafe</span>'}"
            f' <span class="muted">#{row.cafe_id}</span>',
            badge(row.status),
            detail(row),
            str(row.attempts),
            str(row.parts),
            esc(row.chat_id),
            esc(moment(row.updated_at, page.zone, page.now)),
        ]
        for row in page.digests
    ]
    headers = ("Cafe", "Status", "Why / next attempt", "Attempts", "Parts", "Chat id", "Updated")
    listing = table(headers, rows, numeric=(3, 4)) if rows else '<p class="muted">No digest to show.</p>'
    title = f"<h2>Digests of {esc(page.day)}</h2>"
    return f'<section id="digests">{title}<div class="chips">{chip_html}</div>{form}{listing}</section>'


def _batches(page: ConsolePage) -> str:
    def row(b: BatchRow) -> list[str]:
        c = b.counts
        bar = f'<div class="bar" title="{b.percent}%"><span style="width:{b.percent}%"></span></div>'
        took = f"{b.seconds:.0f} s" if b.seconds is not None else ""
        cost = f"${b.cost:.4f}" if b.cost is not None else "—"
        return [
            f"{esc(c.day)} <span class=muted>{esc(c.trigger)}</span><br><code>{esc(c.batch_id)}</code>",
            badge(c.status.value),
            f"{bar}{c.done}/{c.total} ({b.percent}%) {esc(took)}",
            f"{c.succeeded} / {c.failed} / {c.skipped} / {c.resent}",
            f"{c.prompt_tokens:,} in<br>{c.output_tokens:,} out",
            esc(cost),
            f'<span class="error">{esc(c.stopped_reason)}</span>' if c.stopped_reason else "",
        ]

    headers = (
        "Batch",
        "Status",
        "Progress",
        "Succeeded / failed / skipped / resent",
        "Tokens",
        "Cost",
        "Why it stopped",
    )
    listing = (
        table(headers, map(row, page.batches), numeric=(4, 5)) if page.batches else '<p class="muted">No batch yet.</p>'
    )
    hint = (
        ""
        if page.prices_known
        else (
            '<p class="muted">Set <code>GEMINI_PRICE_INPUT_PER_M</code> and <code>GEMINI_PRICE_OUTPUT_PER_M</code> '
            "to see each batch's estimated cost.</p>"
        )
    )
    return f'<section id="batches"><h2>Recommendation batches</h2>{listing}{hint}</section>'


def _keys(page: ConsolePage) -> str:
    if page.keys is None:
        return '<section id="gemini"><h2>Gemini key pool</h2><p class="muted">GEMINI_API_KEYS is not set.</p></section>'

    def row(key: dict[str, Any]) -> list[str]:
        return [
            f"<code>{esc(key['fingerprint'])}</code>",
            badge(key["state"]),
            esc(moment(key["until"], page.zone, page.now)),
            f"{key['ok']} / {key['rate_limited']} / {key['errors']}",
            f"{key['prompt_tokens']:,} in / {key['output_tokens']:,} out",
        ]

    headers = ("Key", "State", "Until", "Calls ok / 429 / errors (this worker)", "Tokens (this worker)")
    return (
        '<section id="gemini"><h2>Gemini key pool</h2>'
        f'<p class="muted">States {esc(page.keys["source"])}.</p>'
        f"{table(headers, map(row, page.keys['keys']), numeric=(3, 4))}</section>"
    )


def _budget(page: ConsolePage) -> str:
    budget = page.budget
    if budget is None:
        body = '<p class="muted">TELEGRAM_BOT_TOKEN is not set: digests are dead-lettered, not sent.</p>'
    else:
        shared = budget.get("shared") if isinstance(budget.get("shared"), dict) else {}
        worker = budget.get("worker") if isinstance(budget.get("worker"), dict) else {}
        if shared.get("reachable"):
            state = f"{shared.get('booked_ahead')} sends booked ahead, paused for {shared.get('paused_for_s')} s"
        else:
            state = f"Redis unreachable ({shared.get('error', '?')})"
        items = {
            "bot id": budget.get("bot_id"),
            "mode": budget.get("mode"),
            "limits": f"{budget.get('global_rate')} msg/s for the bot, {budget.get('group_per_minute')}/min a group, "
            f"{budget.get('chat_interval')} s between two to a chat",
            "shared state": state,
            "this worker": f"{worker.get('waiting', 0)} waiting now; {worker.get('waits', 0)} waits "
            f"({worker.get('wait_seconds', 0)} s), {worker.get('deferred', 0)} deferred, {worker.get('pauses', 0)} "
            f"pauses (429), {worker.get('fallbacks', 0)} fallbacks to {budget.get('fallback_rate')} msg/s",
        }
        rows = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items.items())
        body = f'<div class="card"><dl>{rows}</dl></div>'
    return f'<section id="telegram"><h2>Telegram budget</h2>{body}</section>'


def _letters(page: ConsolePage) -> str:
    letters = page.letters
    if letters is None:
        return '<section id="dead-letters"><h2>Dead letters</h2><p class="muted">Not available.</p></section>'
    summary = (
        f"<p>{letters.read} read (the most recent of each partition) · "
        f"<strong>{letters.pending} not replayed yet</strong> · {letters.replayable} of them replayable</p>"
    )
    groups = table(
        ("Source", "Reason", "Letters", "Not replayed"),
        ([esc(g.source), esc(g.reason), str(g.count), str(g.pending)] for g in letters.groups),
        numeric=(2, 3),
    )
    latest = table(
        ("Failed at", "Source", "Key", "Reason", "Replay"),
        (
            [
                esc(moment(row.failed_at, page.zone, page.now)),
                esc(row.source),
                esc(row.key),
                f'<span class="error">{esc(row.reason)}</span>',
                ("replayable" if row.replayable else "not replayable") + ("" if row.pending else ", already replayed"),
            ]
            for row in letters.latest
        ),
    )
    action = (
        f'<form method="post" action="/ops/replay/">{csrf_field(page.csrf)}'
        '<input type="hidden" name="dry_run" value="1"><button>Preview a replay (dry run)…</button></form>'
    )
    return (
        f'<section id="dead-letters"><h2>Dead letters</h2>{summary}{action}'
        f"<h3>By source and reason</h3>{groups}<h3>Latest</h3>{latest}</section>"
    )


def render_console(page: ConsolePage) -> str:
    """The whole page."""
    notes = "".join(f'<p class="note">{esc(note)}</p>' for note in page.notes)
    body = notes + _digests(page) + _batches(page) + _keys(page) + _budget(page) + _letters(page)
    subtitle = f"app {page.app_id} · served by {page.worker} · {moment(page.now, page.zone, page.now)} {page.zone.key}"
    return document("lunch-streams · operator console", subtitle, body, page.csrf)
