from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from agents.recommendations.batches import BatchCounts, BatchStatus, apply_progress, progress_step
from agents.recommendations.schedule import latest_fire, missed
from models.records import BatchProgress

MOSCOW = ZoneInfo("Europe/Moscow")


def ev(kind: str, at: float = 1.0, **kw) -> BatchProgress:
    return BatchProgress(batch_id="b1", kind=kind, at=at, **kw)


def test_batch_counts_fold_and_finish_when_everyone_is_accounted_for():
    counts = apply_progress(None, ev("started", at=10, total=3, day="2026-11-25", trigger="manual"))
    assert (counts.status, counts.total, counts.started_at, counts.finished_at) == ("running", 3, 10, None)
    counts = apply_progress(counts, ev("succeeded", at=11))
    counts = apply_progress(counts, ev("failed", at=12))
    assert counts.finished_at is None
    counts = apply_progress(counts, ev("skipped", at=13))
    assert (counts.succeeded, counts.failed, counts.skipped) == (1, 1, 1)
    assert (counts.status, counts.finished_at) == ("finished", 13)
    again = apply_progress(counts, ev("succeeded", at=14))
    assert again.succeeded == 1 and again.finished_at == 13  # nothing counted past the total


def test_empty_batch_finishes_when_it_starts():
    counts = apply_progress(None, ev("started", at=5, total=0))
    assert (counts.status, counts.finished_at) == ("finished", 5)


def test_stopped_batch_keeps_its_reason_and_finishes_as_stopped():
    counts = apply_progress(None, ev("started", total=2))
    counts = apply_progress(counts, ev("stopped", reason="all Gemini keys exhausted: no key"))
    counts = apply_progress(counts, ev("skipped"))
    counts = apply_progress(counts, ev("skipped", at=9))
    assert (counts.status, counts.stopped_reason, counts.skipped) == (
        "stopped",
        "all Gemini keys exhausted: no key",
        2,
    )
    assert counts.finished_at == 9


def test_the_fold_does_not_mutate_its_input_and_rejects_kinds_that_count_nothing():
    start = apply_progress(None, ev("started", total=1))
    apply_progress(start, ev("succeeded"))
    assert start.succeeded == 0
    with pytest.raises(ValueError, match="does not change"):
        apply_progress(start, ev("sweep"))
    with pytest.raises(ValueError, match="is not a valid ProgressKind"):
        ev("exploded")


def test_counts_round_trip_through_the_table_value():
    counts = apply_progress(None, ev("started", at=10, total=3, day="2026-11-25", trigger="manual"))
    assert BatchCounts.from_dict(counts.to_dict()) == counts
    assert BatchCounts.from_dict(counts.to_dict()).status is BatchStatus.RUNNING


def test_progress_is_logged_every_tenth():
    assert [progress_step(n) for n in (0, 3, 10, 95, 10_000)] == [1, 1, 1, 9, 1000]


def test_latest_fire_in_the_configured_timezone():
    assert latest_fire("0 6 * * *", datetime(2026, 11, 25, 6, 0, tzinfo=MOSCOW)) == datetime(
        2026, 11, 25, 6, 0, tzinfo=MOSCOW
    )
    assert latest_fire("0 6 * * *", datetime(2026, 11, 25, 5, 59, tzinfo=MOSCOW)).day == 24
    assert latest_fire("0 6 * * *", datetime(2026, 11, 25, 23, 0, tzinfo=MOSCOW)).hour == 6


def test_missed_means_a_fire_that_did_not_start_a_batch():
    due = datetime(2026, 11, 25, 6, 0, tzinfo=MOSCOW)
    assert missed(None, due)
    assert missed(due.timestamp() - 86400, due)
    assert not missed(due.timestamp(), due)


def test_abandoned_batch_counts_the_missing_as_failed_and_stalled_detection():
    counts = apply_progress(None, ev("started", at=0, total=3))
    counts = apply_progress(counts, ev("succeeded", at=10))
    assert not counts.stalled(now=50, after=60)
    assert counts.stalled(now=70, after=60)
    counts = apply_progress(counts, ev("resent", at=70, total=2))
    assert counts.resent == 1 and not counts.stalled(now=100, after=60)
    counts = apply_progress(counts, ev("abandoned", at=200, reason="users never reported after resends"))
    assert (counts.succeeded, counts.failed, counts.status, counts.finished_at) == (1, 2, "finished", 200)
    assert not counts.stalled(now=1000, after=60)
