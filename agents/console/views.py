"""The operator console on the worker's web server: ``/ops/`` (the page) and ``/ops/replay/`` (the action).

Every page needs ``OPS_TOKEN`` (``streams.web_security`` checks it before a view runs: a bearer token,
or the session of the sign-in form, whose POSTs also carry the CSRF token); with none set they are off.
``POST /ops/replay/`` with ``dry_run=1`` previews a replay, without it replays. ``/ops/api/*`` are what
one worker asks another for (JSON of the tables it holds), with the fleet's token.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import date, datetime

from faust import web

from agents.console.fleet import from_every_owner, from_owner
from agents.console.model import (
    STATUSES,
    batch_rows,
    digest_rows,
    latest_states,
    select_digests,
    status_counts,
)
from agents.console.page import ConsolePage, render_console
from agents.console.replay_page import render_refusal, render_replay
from agents.console.service import console
from agents.console.style import CSS
from agents.recommendations.agent import recommendation_batches
from streams.app import app, settings, web_guard
from streams.web_security import AUTH

__all__ = ["BatchesApi", "ConsoleView", "DigestsApi", "ReplayView"]

log = logging.getLogger(__name__)

BATCHES_KEY = "batches"  # any key: the batch table has one partition
web_guard.allow_style(CSS)  # the pages' one <style>, allowed by its hash in the CSP


def _day(request: web.Request) -> str:
    try:
        return date.fromisoformat(request.query.get("day", "")).isoformat()
    except ValueError:
        return datetime.now(settings.zone).date().isoformat()


@app.page("/ops/")
class ConsoleView(web.View):
    """Today's digests, the batches, the Gemini keys, the Telegram budget and the dead letters, on one page."""

    async def get(self, request: web.Request) -> web.Response:
        service, day, fleet = console(), _day(request), web_guard.fleet_headers()
        status = request.query.get("status") if request.query.get("status") in STATUSES else None
        query = request.query.get("q", "")[:100]
        (parts, notes), (batches, batch_note), keys, budget, (letters, letter_note) = await asyncio.gather(
            from_every_owner(
                app,
                service.deliveries,
                f"/ops/api/digests/?day={day}",
                "states",
                lambda: service.local_digests(day),
                headers=fleet,
            ),
            from_owner(
                app, service.batches, BATCHES_KEY, "/ops/api/batches/", "batches", service.local_batches, headers=fleet
            ),
            service.key_pool(),
            service.telegram_budget(),
            service.letters(),
        )
        states = latest_states(*parts)
        names, name_note = await service.cafe_names(int(cafe) for cafe in states)
        rows = digest_rows(states, names)
        page = ConsolePage(
            app_id=settings.app_id,
            worker=str(app.conf.canonical_url),
            now=time.time(),
            zone=settings.zone,
            day=day,
            status=status,
            query=query,
            digests=select_digests(rows, status, query),
            counts=status_counts(rows),
            batches=batch_rows(batches or [], service.prices),
            prices_known=service.prices.known,
            keys=keys,
            budget=budget,
            letters=letters,
            csrf=web_guard.csrf(request),
            notes=[note for note in (*notes, batch_note, name_note, letter_note) if note],
        )
        return self.html(render_console(page))


@app.page("/ops/replay/")
class ReplayView(web.View):
    """POST ``dry_run=1``: a dry run of ``replay-dead-letters`` (publishes nothing); POST without: the replay."""

    async def post(self, request: web.Request) -> web.Response:
        form = await request.post()
        dry_run = form.get("dry_run") in ("1", "true")
        csrf, auth = web_guard.csrf(request), request.get(AUTH)
        who = f"{request.remote} ({auth.how if auth else '?'})"
        try:
            replayed = await console().replay(dry_run=dry_run, who=who)
        except Exception as exc:  # Kafka: the operator reads why and tries again
            log.error("ops console: replay-dead-letters failed: %s: %s", type(exc).__name__, str(exc)[:200])
            message = f"The replay failed ({type(exc).__name__}); see the worker's log."
            return self.html(render_refusal(message, csrf), status=503)
        return self.html(render_replay(replayed, csrf))


@app.page("/ops/api/digests/")
class DigestsApi(web.View):
    """One day's digest states this worker holds: ``{"states": {cafe id: state}}`` (``?day=``, default today)."""

    async def get(self, request: web.Request) -> web.Response:
        return self.json({"states": console().local_digests(_day(request))})


@app.page("/ops/api/batches/")
class BatchesApi(web.View):
    """Every batch's counts, from the worker that owns the batch table: ``{"batches": [...]}``."""

    @app.table_route(table=recommendation_batches, exact_key=BATCHES_KEY)
    async def get(self, request: web.Request) -> web.Response:
        return self.json({"batches": console().local_batches()})
