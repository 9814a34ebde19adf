"""DigestStore on a fake database: a batched read that fails is read again per cafe, at once."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

import asyncpg
import pytest

from agents.notifications.queries import DIGEST_STATEMENT, DIGESTS_STATEMENT, DigestStore

DAY = date(2026, 11, 25)
BAD = 3_000_000_000


def row(cafe_id: int, name: str) -> dict[str, Any]:
    return {
        "id": cafe_id,
        "name": name,
        "tg_chat_id": -cafe_id,
        "notifications_enabled": True,
        "order_id": None,
        "user_name": None,
        "combo_name": None,
        "notes": None,
        "total_price": None,
        "items": None,
    }


class FakeDatabase:
    """Cafes 1, 2, 3 exist; any read that holds ``BAD`` fails as ``failure`` does."""

    def __init__(self, failure: Exception) -> None:
        self.failure = failure
        self.reads: list[list[int]] = []

    async def fetch(self, statement: object, params: dict[str, Any]) -> list[dict[str, Any]]:
        ids = params["cafe_ids"] if statement is DIGESTS_STATEMENT else [params["cafe_id"]]
        assert statement in (DIGEST_STATEMENT, DIGESTS_STATEMENT)
        self.reads.append(list(ids))
        if BAD in ids:
            raise self.failure
        return [row(i, f"Cafe {i}") for i in sorted(ids) if i in (1, 2, 3)]


async def load(db: FakeDatabase, *cafe_ids: int) -> list[Any]:
    store = DigestStore(db, gather=len(cafe_ids))  # type: ignore[arg-type]
    return await asyncio.gather(*(store.load_digest(i, DAY) for i in cafe_ids), return_exceptions=True)


async def test_a_failed_batched_read_is_read_again_per_cafe_and_fails_alone() -> None:
    failure = asyncpg.DataError("value out of int32 range")
    db = FakeDatabase(failure)
    answers = await load(db, 1, 2, BAD, 3)
    assert [a.cafe_name for a in answers if not isinstance(a, BaseException)] == ["Cafe 1", "Cafe 2", "Cafe 3"]
    assert answers[2] is failure
    assert db.reads[0] == [1, 2, 3, BAD] and sorted(db.reads[1:]) == [[1], [2], [3], [BAD]]


@pytest.mark.parametrize("failure", [ConnectionRefusedError(), asyncpg.CannotConnectNowError("starting up")])
async def test_an_unreachable_database_is_not_asked_once_per_cafe(failure: Exception) -> None:
    db = FakeDatabase(failure)
    answers = await load(db, 1, 2, BAD)
    assert all(a is failure for a in answers)
    assert db.reads == [[1, 2, BAD]]


async def test_a_cafe_that_does_not_exist_is_none() -> None:
    first, unknown = await load(FakeDatabase(RuntimeError()), 1, 4)
    assert first.cafe_name == "Cafe 1" and unknown is None
