"""The operator console on the worker's web server: ``/ops/`` (read-only) and ``/ops/replay/`` (the action).

Read-only pages are open to whoever reaches ``WEB_BIND``. Replaying needs ``OPS_TOKEN``, given as
the ``X-Ops-Token`` header or the ``token`` form field; without it (or with no token set) the answer
is 403. ``/ops/api/*`` are what one worker asks another for (JSON of the tables it holds).
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
    authorized,
    batch_rows,
    digest_rows,
    latest_states,
    select_digests,
    status_counts,
)
from agents.console.page import ConsolePage, render_console
from agents.console.replay_page import render_refusal, render_replay
from agents.console.service import console
from agents.recommendations.agent import recommendation_batches
from streams.app import app, settings

__all__ = ["BatchesApi", "ConsoleView", "DigestsApi", "ReplayView"]

log = logging.getLogger(__name__)

BATCHES_KEY = "batches"  # any key: the batch table has one partition


def _day(request: web.Request) -> str:
    try:
        return date.fromisoformat(request.query.get("day", "")).isoformat()
    except ValueError:
        return datetime.now(settings.zone).date().isoformat()


@app.page("/ops/")
class ConsoleView(web.View):
    """Today's digests, the batches, the Gemini keys, the Telegram budget and the dead letters, on one page."""

    async def get(self, request: web.Request) -> web.Response:
        service, day = console(), _day(request)
        status = request.query.get("status") if request.query.get("status") in STATUSES else None
        query = request.query.get("q", "")[:100]
        (parts, notes), (batches, batch_note), keys, budget, (letters, letter_note) = await asyncio.gather(
            from_every_owner(
                app, service.deliveries, f"/ops/api/digests/?day={day}", "states", lambda: service.local_digests(day)
            ),
            from_owner(app, service.batches, BATCHES_KEY, "/ops/api/batches/", "batches", service.local_batches),
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
            actions_enabled=service.actions_enabled,
            notes=[note for note in (*notes, batch_note, name_note, letter_note) if note],
        )
        return self.html(render_console(page))


@app.page("/ops/replay/")
class ReplayView(web.View):
    """GET: a dry run of ``replay-dead-letters`` (publishes nothing); POST with the token: the replay."""

    async def get(self, request: web.Request) -> web.Response:
        if not console().actions_enabled:
            return self.html(render_refusal("Actions are disabled: OPS_TOKEN is not set."), status=403)
        return await self._replay(request, dry_run=True)

    async def post(self, request: web.Request) -> web.Response:
        if not console().actions_enabled:
            return self.html(render_refusal("Actions are disabled: OPS_TOKEN is not set."), status=403)
        form = await request.post()
        given = request.headers.get("X-Ops-Token") or form.get("token")
        if not authorized(given if isinstance(given, str) else None, settings.ops_token):
            log.warning("ops console: replay-dead-letters refused to %s: wrong or missing OPS_TOKEN", request.remote)
            return self.html(render_refusal("Wrong or missing OPS_TOKEN: nothing was replayed."), status=403)
        return await self._replay(request, dry_run=False)

    async def _replay(self, request: web.Request, *, dry_run: bool) -> web.Response:
        try:
            replayed = await console().replay(dry_run=dry_run, who=str(request.remote))
        except Exception as exc:  # Kafka: the operator reads why and tries again
            log.error("ops console: replay-dead-letters failed: %s: %s", type(exc).__name__, str(exc)[:200])
            return self.html(
                render_refusal(f"The replay failed ({type(exc).__name__}); see the worker's log."), status=503
            )
        return self.html(render_replay(replayed))


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
