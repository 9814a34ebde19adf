"""The stalled-partition policy: records left, nothing in flight, no progress for a while."""

from __future__ import annotations

from streams.rebalance import PartitionProgress, StallDetector, StallWatch


def test_a_partition_behind_its_end_with_nothing_in_flight_is_stalled_after_the_delay_and_once():
    detector = StallDetector(stall_after=10)
    behind = {"p0": PartitionProgress(committed=40, end=130, busy=False)}
    assert detector.observe(behind, now=0) == []
    assert detector.observe(behind, now=9.9) == []
    assert detector.observe(behind, now=10) == ["p0"]
    # The clock starts again: a seek gets its chance before the next one.
    assert detector.observe(behind, now=15) == []
    assert detector.observe(behind, now=20) == ["p0"]


def test_progress_of_the_committed_offset_restarts_the_clock():
    detector = StallDetector(stall_after=10)
    detector.observe({"p0": PartitionProgress(40, 130, False)}, now=0)
    assert detector.observe({"p0": PartitionProgress(41, 130, False)}, now=9) == []
    assert detector.observe({"p0": PartitionProgress(41, 130, False)}, now=18) == []
    assert detector.observe({"p0": PartitionProgress(41, 130, False)}, now=19) == ["p0"]


def test_busy_caught_up_or_unknown_partitions_are_never_stalled():
    detector = StallDetector(stall_after=1)
    progress = {
        "busy": PartitionProgress(40, 130, True),
        "caught-up": PartitionProgress(130, 130, False),
        "no-end-yet": PartitionProgress(None, None, False),
        "empty": PartitionProgress(None, 0, False),
    }
    for now in range(10):
        assert detector.observe(progress, now=now) == []


def test_a_partition_never_committed_but_with_records_is_stalled():
    detector = StallDetector(stall_after=5)
    progress = {"p1": PartitionProgress(None, 12, False)}
    assert detector.observe(progress, now=0) == []
    assert detector.observe(progress, now=5) == ["p1"]


def test_a_partition_that_becomes_busy_starts_over():
    detector = StallDetector(stall_after=5)
    detector.observe({"p0": PartitionProgress(40, 130, False)}, now=0)
    detector.observe({"p0": PartitionProgress(40, 130, True)}, now=3)
    assert detector.observe({"p0": PartitionProgress(40, 130, False)}, now=6) == []
    assert detector.observe({"p0": PartitionProgress(40, 130, False)}, now=11) == ["p0"]


async def test_a_failing_check_is_logged_and_does_not_raise(monkeypatch, caplog):
    watch = StallWatch(stall_after=5)

    async def broker_down() -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(watch, "_check", broker_down)
    await watch.check()  # the timer calling it goes on
    assert "check failed" in caplog.text and "broker down" in caplog.text
