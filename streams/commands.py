"""Worker CLI commands: ``faust -A streams.app <command>``."""

from __future__ import annotations

import json
from datetime import date, datetime

from faust.cli import AppCommand, option

from streams.app import app, settings
from streams.dead_letters import replay_dead_letters
from streams.producers import EventPublisher

__all__ = ["replay_dead_letters_command", "request_recommendations", "send_deadline"]


@app.command(
    option("--cafe-id", type=int, required=True, help="The cafe whose deadline passed."),
    option("--date", "day", default=None, help="The order date, YYYY-MM-DD (default: today in TIMEZONE)."),
)
async def send_deadline(self: AppCommand, cafe_id: int, day: str | None) -> None:
    """Publish a deadline-passed event, as the backend does."""
    order_date = date.fromisoformat(day) if day else datetime.now(settings.zone).date()
    async with EventPublisher(settings) as publisher:
        await publisher.deadline_passed(cafe_id, order_date)
    self.say(f"deadline-passed published: cafe {cafe_id}, {order_date.isoformat()}")


@app.command()
async def request_recommendations(self: AppCommand) -> None:
    """Publish a generate_recommendations daily task: a batch starts at once."""
    async with EventPublisher(settings) as publisher:
        await publisher.daily_task("generate_recommendations")
    self.say("daily task generate_recommendations published")


@app.command(
    option("--dry-run", is_flag=True, default=False, help="Show what would be replayed; publish nothing."),
    name="replay-dead-letters",
)
async def replay_dead_letters_command(self: AppCommand, dry_run: bool) -> None:
    """Send the dead letters not replayed yet back to where they can be processed again."""
    counts = await replay_dead_letters(settings, dry_run=dry_run)
    self.say(json.dumps(counts))
