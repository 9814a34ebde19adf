"""The console's replay pages (pure): the dry-run preview with the form that replays, the result, a refusal."""

from __future__ import annotations

from agents.console.markup import csrf_field, document, esc, table
from agents.console.service import Replayed

__all__ = ["render_refusal", "render_replay"]

TITLE = "lunch-streams · replay dead letters"


def _steps(replayed: Replayed) -> str:
    verb = "would go to" if replayed.dry_run else "sent to"
    rows = (
        [
            f"{step.partition}/{step.offset}",
            esc(step.letter.get("source_topic")),
            esc(step.letter.get("key")),
            f'<span class="error">{esc(step.letter.get("reason"))}</span>',
            f"{verb} {esc(step.plan.topic)} key {esc(step.plan.key)}" if step.plan else "cannot be replayed",
        ]
        for step in replayed.steps
    )
    return table(("Partition/offset", "Source", "Key", "Reason", "Replay"), rows)


def render_replay(replayed: Replayed, csrf: str | None = None) -> str:
    """A dry run's preview with the form that replays for real, or what a replay did; ``csrf``: the form's token."""
    n, unreplayable = replayed.counts["replayed"], replayed.counts["unreplayable"]
    if replayed.dry_run:
        head = f"<h2>Dry run</h2><p>{n} letter(s) would be replayed; {unreplayable} cannot be.</p>"
        form = (
            f'<form class="filters" method="post" action="/ops/replay/">{csrf_field(csrf)}'
            f"<button>Replay {n} letter(s)</button></form>"
            '<p class="muted">Digests start over at attempt 1 (never resent if sent meanwhile); letters that arrive '
            "after this preview are replayed too.</p>"
            if n
            else '<p class="muted">Nothing to replay.</p>'
        )
    else:
        head = f"<h2>Replayed</h2><p><strong>{n} letter(s) replayed</strong>; {unreplayable} could not be.</p>"
        form = ""
    steps = _steps(replayed) if replayed.steps else ""
    return document(TITLE, "the same path as faust -A streams.app replay-dead-letters", head + form + steps, csrf)


def render_refusal(message: str, csrf: str | None = None) -> str:
    """Why an action did not complete."""
    body = f'<p class="note">{esc(message)}</p><p><a href="/ops/">Back</a></p>'
    return document(TITLE, "not done", body, csrf)
