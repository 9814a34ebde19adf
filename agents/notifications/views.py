"""``GET /notifications/``: this worker's digest counts, Telegram's answers and the bot's shared budget.

Never shows a secret: the bot appears by its id.
"""

from __future__ import annotations

from faust import web

from agents.notifications.agent import notifications
from streams.app import app
from streams.redaction import bot_id_of

__all__ = ["NotificationsView"]


@app.page("/notifications/")
class NotificationsView(web.View):
    """This worker's digest counts, Telegram answers by status, and the bot's shared send budget."""

    async def get(self, request: web.Request) -> web.Response:
        capability = notifications()
        telegram, budget = capability.telegram, capability.budget
        return self.json(
            {
                "digests": dict(capability.notifier.counts) | {"dead_lettered": capability.notifier.dead_letters.count},
                "telegram": {
                    "bot_id": telegram.bot_id if telegram else bot_id_of(None),
                    "responses": dict(telegram.responses) if telegram else {},
                    "token_rejected": bool(telegram and telegram.unauthorized),
                },
                "budget": await budget.describe() if budget is not None else None,
            }
        )
