"""The operator console's view models: pure functions from the worker's tables and state to rows.

Nothing here does I/O or escapes HTML (``page`` does): values are plain data, times UNIX seconds.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agents.notifications.delivery import DeliveryStatus
from agents.recommendations.batches import BatchCounts
from agents.recommendations.usage import TokenPrices
from streams.dead_letters import plan_replay

__all__ = [
    "STATUSES",
    "BatchRow",
    "DigestRow",
    "LetterGroup",
    "LetterRow",
    "Letters",
    "batch_rows",
    "digest_rows",
    "latest_states",
    "reason_class",
    "select_digests",
    "status_counts",
    "summarize_letters",
]

#: Digest statuses in the order the console shows them.
STATUSES = tuple(status.value for status in DeliveryStatus)
_NUMBER = re.compile(r"\d+\.\d+|\d{4,}")


# -- digests ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DigestRow:
    """One cafe's digest of the day: ``detail`` is the skip reason, the error, or why it waits."""

    cafe_id: int
    cafe_name: str | None
    status: str
    attempts: int
    parts: int
    chat_id: int | None
    detail: str | None
    next_attempt_at: float | None
    updated_at: float


def latest_states(*parts: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """One day's states (cafe id -> ``DeliveryState`` dict) from several workers: the latest update wins.

    A worker also holds standby copies of partitions another owns; the owner's is never older.
    """
    merged: dict[str, dict[str, Any]] = {}
    for part in parts:
        for cafe, state in part.items():
            known = merged.get(cafe)
            if known is None or float(state.get("updated_at") or 0) > float(known.get("updated_at") or 0):
                merged[cafe] = dict(state)
    return merged


def digest_rows(states: Mapping[str, Mapping[str, Any]], names: Mapping[int, str]) -> list[DigestRow]:
    """Rows of one day's states, by cafe id; ``names`` from the database (a cafe missing there: no name)."""
    rows = []
    for key, state in states.items():
        cafe_id = int(key)
        rows.append(
            DigestRow(
                cafe_id=cafe_id,
                cafe_name=names.get(cafe_id),
                status=str(state.get("status")),
                attempts=int(state.get("attempts") or 0),
                parts=int(state.get("parts_sent") or 0),
                chat_id=state.get("chat_id"),
                detail=state.get("last_error"),
                next_attempt_at=state.get("next_attempt_at"),
                updated_at=float(state.get("updated_at") or 0),
            )
        )
    return sorted(rows, key=lambda row: row.cafe_id)


def select_digests(rows: Iterable[DigestRow], status: str | None = None, query: str = "") -> list[DigestRow]:
    """The rows of ``status`` (None: all) whose cafe matches ``query``: its id, or part of its name."""
    query = query.strip().casefold()
    return [
        row
        for row in rows
        if (status is None or row.status == status)
        and (not query or query == str(row.cafe_id) or query in (row.cafe_name or "").casefold())
    ]


def status_counts(rows: Iterable[DigestRow]) -> dict[str, int]:
    """How many digests have each status, every status listed."""
    counts = Counter(row.status for row in rows)
    return {status: counts[status] for status in STATUSES}


# -- batches ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BatchRow:
    """One batch as the console shows it; ``cost`` is None when no token price is set."""

    counts: BatchCounts
    percent: int
    seconds: float | None
    cost: float | None


def batch_rows(raw: Iterable[Mapping[str, Any]], prices: TokenPrices, limit: int = 10) -> list[BatchRow]:
    """The latest ``limit`` batches, newest first, with their progress, duration and estimated cost."""
    batches = sorted((BatchCounts.from_dict(dict(b)) for b in raw), key=lambda b: b.started_at or 0, reverse=True)
    rows = []
    for counts in batches[:limit]:
        percent = 100 if counts.total == 0 else min(100, counts.done * 100 // counts.total)
        end = counts.finished_at if counts.finished_at is not None else counts.updated_at
        seconds = end - counts.started_at if end is not None and counts.started_at is not None else None
        rows.append(BatchRow(counts, percent, seconds, counts.cost(prices)))
    return rows


# -- dead letters ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LetterRow:
    """One dead letter: ``pending`` when the replay has not read it yet, ``replayable`` when it can be."""

    partition: int
    offset: int
    source: str
    key: str | None
    reason: str
    failed_at: float | None
    replayable: bool
    pending: bool


@dataclass(frozen=True, slots=True)
class LetterGroup:
    source: str
    reason: str
    count: int
    pending: int


@dataclass(frozen=True, slots=True)
class Letters:
    """The dead letters read: counts by source and reason, and the latest ones."""

    read: int
    pending: int
    replayable: int  # pending and replayable: what a replay would send back
    groups: list[LetterGroup]
    latest: list[LetterRow]


def reason_class(reason: str, limit: int = 120) -> str:
    """A reason with its varying numbers (hours, ids, sizes) blanked, so alike letters group together."""
    return _NUMBER.sub("#", reason)[:limit]


def _source(topic: str, prefix: str) -> str:
    return topic[len(prefix) :] if prefix and topic.startswith(prefix) else topic


def _timestamp(value: object) -> float | None:
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


def summarize_letters(
    records: Iterable[tuple[int, int, Mapping[str, Any]]],
    replayed_up_to: Mapping[int, int],
    *,
    prefix: str,
    now: float,
    latest: int = 20,
) -> Letters:
    """Summarize ``(partition, offset, letter)`` records; ``replayed_up_to``: the replay's next offset per partition."""
    rows = []
    for partition, offset, letter in records:
        rows.append(
            LetterRow(
                partition=partition,
                offset=offset,
                source=_source(str(letter.get("source_topic", "?")), prefix),
                key=letter.get("key"),
                reason=str(letter.get("reason", "not a dead letter")),
                failed_at=_timestamp(letter.get("failed_at")),
                replayable=plan_replay(dict(letter), now) is not None,
                pending=offset >= replayed_up_to.get(partition, 0),
            )
        )
    groups: Counter[tuple[str, str]] = Counter()
    pending: Counter[tuple[str, str]] = Counter()
    for row in rows:
        group = (row.source, reason_class(row.reason))
        groups[group] += 1
        pending[group] += row.pending
    return Letters(
        read=len(rows),
        pending=sum(row.pending for row in rows),
        replayable=sum(row.pending and row.replayable for row in rows),
        groups=[LetterGroup(s, r, n, pending[(s, r)]) for (s, r), n in groups.most_common()],
        latest=sorted(rows, key=lambda row: (row.failed_at or 0, row.offset), reverse=True)[:latest],
    )
