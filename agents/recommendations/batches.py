"""Per-batch counts: a pure fold of ``BatchProgress`` events into the batch's table entry."""

from __future__ import annotations

from typing import Any

from models.records import BatchProgress

__all__ = ["COUNTED", "BatchCounts", "apply_progress", "done", "progress_step", "stalled"]

COUNTED = ("succeeded", "failed", "skipped")
BatchCounts = dict[str, Any]


def _new(batch_id: str) -> BatchCounts:
    return {
        "batch_id": batch_id,
        "status": "running",
        "day": None,
        "trigger": None,
        "total": 0,
        "succeeded": 0,
        "failed": 0,
        "skipped": 0,
        "started_at": None,
        "finished_at": None,
        "stopped_reason": None,
        "updated_at": None,
        "resent": 0,
    }


def done(counts: BatchCounts) -> int:
    return sum(int(counts[k]) for k in COUNTED)


def progress_step(total: int) -> int:
    """Log progress every 10 % of a batch (at least every user for small ones)."""
    return max(1, total // 10)


def apply_progress(counts: BatchCounts | None, event: BatchProgress) -> BatchCounts:
    """The batch's counts after ``event`` (a new dict; ``counts`` is not changed).

    A batch finishes when every user is accounted for; a batch with no users
    finishes when it starts. Results past the total (a redelivered request after
    a crash) are not counted twice into ``done`` beyond ``total``.
    """
    new = _new(event.batch_id) if counts is None else dict(counts)
    if event.kind == "started":
        new.update(total=event.total, day=event.day, trigger=event.trigger, started_at=event.at)
    elif event.kind in COUNTED:
        if new["finished_at"] is None or done(new) < new["total"]:
            new[event.kind] += 1
    elif event.kind == "stopped":
        new["status"] = "stopped"
        new["stopped_reason"] = event.reason
    elif event.kind == "resent":
        new["resent"] += 1  # rounds; the event's total is how many requests were sent again
    elif event.kind == "abandoned":
        # Users that never reported after every resend: counted as failed so the batch ends.
        new["failed"] += max(0, new["total"] - done(new))
        new["stopped_reason"] = event.reason
    else:
        raise ValueError(f"unknown batch progress kind {event.kind!r}")
    new["updated_at"] = event.at
    if new["started_at"] is not None and new["finished_at"] is None and done(new) >= new["total"]:
        new["finished_at"] = event.at
        if new["status"] == "running":
            new["status"] = "finished"
    return new


def stalled(counts: BatchCounts, now: float, after: float) -> bool:
    """A running batch that has heard nothing for ``after`` seconds while users are missing."""
    return (
        counts["finished_at"] is None
        and counts["started_at"] is not None
        and done(counts) < counts["total"]
        and now - (counts["updated_at"] or counts["started_at"]) >= after
    )
