"""Prompt size per user: the demo data and the recommendation benchmark's data, through the real queries.

    .venv/bin/python -m bench.prompt_size

Each data set goes into a fresh database (``sandbox.demo.seed``; ``bench.recommendations.fill``), the
worker's own queries read every active user's stats and ``build_prompt`` makes the prompt. Tokens are
estimated at 4 characters a token, as the sandbox Gemini counts them (``sandbox.gemini.usage_metadata``).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from agents.recommendations.advice import DATA_OPEN, build_prompt
from agents.recommendations.selection import UserSelection
from bench.recommendations import fill
from models.database import Database
from sandbox.demo import seed
from sandbox.gemini import usage_metadata
from streams.settings import Settings
from tests.conftest import FreshDatabase
from tests.integration.harness import unique_name


async def prompts(url: str) -> list[str]:
    """The prompt of every active user of the database at ``url``."""
    db = await Database.open(url, size=1)
    try:
        users = UserSelection(db)
        today = datetime.now(Settings().zone).date()
        stats = [await users.user_stats(user, today) for user in await users.active_user_ids(today)]
        return [build_prompt(s) for s in stats if s is not None]
    finally:
        await db.close()


def report(name: str, texts: list[str]) -> None:
    tokens = [usage_metadata(text, "")["promptTokenCount"] for text in texts]
    data = [usage_metadata(text[text.rfind(DATA_OPEN) :], "")["promptTokenCount"] for text in texts]
    print(f"{name}: {len(texts)} users, prompt {min(tokens)}-{max(tokens)} tokens (data block {min(data)}-{max(data)})")


async def measure(demo: str, bench: str) -> None:
    await seed(Settings(database_url=demo), datetime.now(Settings().zone).date())
    await fill(bench, 3)
    report("demo", await prompts(demo))
    report("bench", await prompts(bench))


def main() -> None:
    demo = FreshDatabase(unique_name("lunch_prompt_demo").replace("-", "_")).create()
    bench = FreshDatabase(unique_name("lunch_prompt_bench").replace("-", "_")).create()
    try:
        asyncio.run(measure(demo.url, bench.url))
    finally:
        demo.drop()
        bench.drop()


if __name__ == "__main__":
    main()
