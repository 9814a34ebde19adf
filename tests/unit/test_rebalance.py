"""The rebalance watchdog: stalled partitions (records left, nothing in flight, no progress), flows left stopped."""

from __future__ import annotations

from types import SimpleNamespace

from streams import rebalance
from streams.rebalance import Lasting, PartitionProgress, StallDetector, StallWatch


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


def test_a_condition_lasts_once_it_held_without_a_break_for_the_delay_then_its_clock_starts_again():
    lasting = Lasting(after=10)
    assert not lasting.observe(True, now=0)
    assert not lasting.observe(True, now=9)
    assert lasting.observe(True, now=10)
    assert not lasting.observe(True, now=15)  # counted again from 10
    assert lasting.observe(True, now=20)


def test_a_break_in_the_condition_restarts_its_clock():
    lasting = Lasting(after=10)
    lasting.observe(True, now=0)
    assert not lasting.observe(False, now=8)
    assert not lasting.observe(True, now=12)
    assert not lasting.observe(True, now=21)
    assert lasting.observe(True, now=22)


class FakeConsumer:
    """Only what the watchdog reads of a consumer whose flow a recovery left stopped."""

    def __init__(self) -> None:
        self.flow_active = False
        self._committed_offset: dict = {}
        self.unacked: set = set()

    def resume_flow(self) -> None:
        self.flow_active = True

    def assignment(self) -> set:
        return set()


class FakeFlowControl:
    def __init__(self) -> None:
        self.active = False

    def is_active(self) -> bool:
        return self.active

    def resume(self) -> None:
        self.active = True


def app_with_stopped_flow(monkeypatch, *, rebalancing: bool) -> SimpleNamespace:
    """Stand in for the Faust app the watchdog reads, its consumer flow stopped."""
    fake_app = SimpleNamespace(
        consumer=FakeConsumer(), flow_control=FakeFlowControl(), rebalancing=rebalancing, should_stop=False,
        in_recovery=rebalancing, topics=SimpleNamespace(acking_topics=set()),
    )
    monkeypatch.setattr(rebalance, "app", fake_app)
    return fake_app


async def test_a_flow_left_stopped_outside_a_rebalance_is_resumed_and_counted(monkeypatch, caplog):
    fake_app = app_with_stopped_flow(monkeypatch, rebalancing=False)
    watch = StallWatch(stall_after=0)
    await watch.check()
    assert fake_app.consumer.flow_active and fake_app.flow_control.active
    assert watch.flow_resumes == 1 and "left stopped outside a rebalance" in caplog.text


async def test_a_flow_stopped_during_a_rebalance_is_left_to_the_rebalance(monkeypatch, caplog):
    fake_app = app_with_stopped_flow(monkeypatch, rebalancing=True)
    watch = StallWatch(stall_after=0)
    await watch.check()
    assert not fake_app.consumer.flow_active and watch.flow_resumes == 0
    assert "has been rebalancing for over" in caplog.text
