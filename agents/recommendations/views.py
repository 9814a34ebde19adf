"""Web views of recommendation batches: ``GET /recommendations/batches/`` and ``/{batch_id}/``.

The batch table has one partition; requests are routed to the worker that owns it. With token
prices set (``GEMINI_PRICE_*_PER_M``) each batch also shows its ``estimated_cost``.
"""

from __future__ import annotations

from typing import Any

from faust import web

from agents.recommendations.agent import recommendation_batches
from agents.recommendations.batches import BatchCounts
from agents.recommendations.usage import TokenPrices
from streams.app import app, settings

__all__ = ["BatchDetailView", "BatchListView", "shown"]

LIST_LIMIT = 100
PRICES = TokenPrices(settings.gemini_price_input_per_m, settings.gemini_price_output_per_m)


def shown(raw: dict[str, Any]) -> dict[str, Any]:
    """A batch's table entry as the views show it: with its estimated cost when prices are set."""
    cost = BatchCounts.from_dict(raw).cost(PRICES)
    return raw if cost is None else raw | {"estimated_cost": round(cost, 6)}


@app.page("/recommendations/batches/")
class BatchListView(web.View):
    """The latest batches, newest first, with their counts."""

    @app.table_route(table=recommendation_batches, exact_key="batches")
    async def get(self, request: web.Request) -> web.Response:
        batches: list[dict[str, Any]] = sorted(
            recommendation_batches.values(), key=lambda b: b.get("started_at") or 0, reverse=True
        )
        return self.json({"batches": [shown(batch) for batch in batches[:LIST_LIMIT]]})


@app.page("/recommendations/batches/{batch_id}/")
class BatchDetailView(web.View):
    """One batch's counts."""

    @app.table_route(table=recommendation_batches, match_info="batch_id")
    async def get(self, request: web.Request, batch_id: str) -> web.Response:
        counts = recommendation_batches.get(batch_id)
        if counts is None:
            return self.json({"error": "no such batch", "batch_id": batch_id}, status=404)
        return self.json(shown(counts))
