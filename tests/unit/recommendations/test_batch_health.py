"""What the alert rules read of recommendation batches: state, start, silence and resends of the recent ones."""

from __future__ import annotations

from agents.recommendations.batch_health import RECENT_BATCHES, batch_health_metrics
from agents.recommendations.batches import BatchCounts, BatchStatus


def samples(batches: list[BatchCounts], now: float) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in batch_health_metrics([b.to_dict() for b in batches], now=now)
        for s in family.samples
    }


def test_state_start_silence_and_resends_of_each_recent_batch():
    running = BatchCounts("b-run", total=10, succeeded=3, started_at=100.0, updated_at=400.0, resent=1)
    stopped = BatchCounts("b-stop", status=BatchStatus.STOPPED, total=5, skipped=5, started_at=50.0, finished_at=60.0)
    abandoned = BatchCounts(
        "b-gone",
        status=BatchStatus.FINISHED,
        total=4,
        failed=4,
        started_at=10.0,
        finished_at=20.0,
        stopped_reason="users never reported after resends",
    )
    got = samples([running, stopped, abandoned], now=1000.0)
    state = {k[1]: v for k, v in got.items() if k[0] == "lunch_recommendation_batch_state" and v == 1}
    assert state == {
        (("batch", "b-run"), ("state", "running")): 1,
        (("batch", "b-stop"), ("state", "stopped")): 1,
        (("batch", "b-gone"), ("state", "abandoned")): 1,
    }
    assert got[("lunch_recommendation_batch_idle_seconds", (("batch", "b-run"),))] == 600.0
    assert not [k for k in got if k[0] == "lunch_recommendation_batch_idle_seconds" and k[1] != (("batch", "b-run"),)]
    assert got[("lunch_recommendation_batch_resends", (("batch", "b-run"),))] == 1
    assert got[("lunch_recommendation_batch_start_time_seconds", (("batch", "b-stop"),))] == 50.0


def test_only_the_most_recent_batches_are_exported():
    batches = [BatchCounts(f"b{i}", total=1, succeeded=1, started_at=float(i), finished_at=float(i)) for i in range(9)]
    got = samples(batches, now=100.0)
    exported = {dict(k[1])["batch"] for k in got if k[0] == "lunch_recommendation_batch_start_time_seconds"}
    assert exported == {f"b{i}" for i in range(9 - RECENT_BATCHES, 9)}
