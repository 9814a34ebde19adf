"""The probes of an orchestrator and an operator: ``/livez``, ``/readyz``, ``/health``. Capabilities add their pages.

- ``/livez``: 200 unless the worker is wedged (liveness: restart it); never probes a dependency.
- ``/readyz``: 200 when the worker is out of rebalance and recovery and Kafka, PostgreSQL and Redis answer
  (readiness: keep it out of service, do not restart it). Probes are cached (``streams.probes``).
- ``/health``: the detailed report for a person: each dependency, liveness, readiness; 503 when a dependency
  is unreachable. Not a liveness probe: a database outage would restart every worker for nothing.

Each answers JSON, never a secret (see ``streams.health``). ``/livez`` and ``/readyz`` are open (like ``/metrics``);
``/health`` and every other page need ``OPS_TOKEN`` (``streams.web_security``): ``/signin/`` is the browser's form,
``/signout/`` drops its session.
"""

from __future__ import annotations

from faust import web

from streams.app import app, web_guard
from streams.health import Verdict, worker_health
from streams.web_security import SIGN_IN, SIGN_OUT

__all__ = ["HealthView", "LivenessView", "ReadinessView", "SignInView", "SignOutView"]


def _answer(view: web.View, verdict: Verdict) -> web.Response:
    return view.json(verdict.report(), status=200 if verdict.ok else 503)


@app.page("/livez")
class LivenessView(web.View):
    """200 while the worker is not wedged; 503 with the reasons when it is."""

    async def get(self, request: web.Request) -> web.Response:
        return _answer(self, worker_health().liveness())


@app.page("/readyz")
class ReadinessView(web.View):
    """200 when the worker has recovered and its dependencies answer; 503 with the reasons otherwise."""

    async def get(self, request: web.Request) -> web.Response:
        return _answer(self, await worker_health().readiness())


@app.page("/health")
class HealthView(web.View):
    """Every dependency, liveness and readiness in detail: 200 when all dependencies answer, else 503."""

    async def get(self, request: web.Request) -> web.Response:
        report = await worker_health().report()
        return self.json(report, status=200 if report["status"] == "ok" else 503)


@app.page(SIGN_IN)
class SignInView(web.View):
    """The browser's sign-in form (GET) and its check (POST): sets the session cookie, throttles failures."""

    async def get(self, request: web.Request) -> web.Response:
        return await web_guard.sign_in_form(request)  # type: ignore[arg-type,return-value]

    async def post(self, request: web.Request) -> web.Response:
        return await web_guard.sign_in(request)  # type: ignore[arg-type,return-value]


@app.page(SIGN_OUT)
class SignOutView(web.View):
    """Drops the session cookie (a POST with the CSRF token, like every form that changes something)."""

    async def post(self, request: web.Request) -> web.Response:
        return await web_guard.sign_out(request)  # type: ignore[arg-type,return-value]
