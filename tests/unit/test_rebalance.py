"""The rebalance guards: stalled partitions, flows left stopped (restarted in a sound order), the start-up check."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import faust
import pytest
from faust.types import TP
from mode import Signal

from streams import rebalance
from streams.rebalance import FaustMismatch, Lasting, PartitionProgress, StallDetector, StallWatch, check_faust, install


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
    """Only what the guards use of Faust's consumer; every call is written to ``calls``."""

    def __init__(self, calls: list, *, flow_active: bool = False, assignment: set | None = None) -> None:
        self.calls = calls
        self.flow_active = flow_active
        self._committed_offset: dict = {}
        self.unacked: set = set()
        self._assignment = assignment or set()
        self.ends: dict = {}
        self.fail_seek: Exception | None = None

    def stop_flow(self) -> None:
        self.calls.append("stop_flow")
        self.flow_active = False

    def resume_flow(self) -> None:
        self.calls.append("resume_flow")
        self.flow_active = True

    async def seek_wait(self, partitions: dict) -> None:
        self.calls.append(("seek_wait", dict(partitions)))
        if self.fail_seek:
            raise self.fail_seek

    async def earliest_offsets(self, *partitions: TP) -> dict:
        return dict.fromkeys(partitions, 0)

    def assignment(self) -> set:
        return set(self._assignment)

    def highwater(self, tp: TP) -> int | None:
        return self.ends.get(tp)


class FakeFlowControl:
    def __init__(self, calls: list, *, active: bool = False) -> None:
        self.calls = calls
        self.active = active

    def is_active(self) -> bool:
        return self.active

    def suspend(self) -> None:
        self.calls.append("suspend")
        self.active = False

    def clear(self) -> None:
        self.calls.append("clear")

    def resume(self) -> None:
        self.calls.append("resume")
        self.active = True


ORDERS, ORDERS_1, CHANGELOG = TP("orders", 0), TP("orders", 1), TP("app-table-changelog", 0)


class StandInApp(SimpleNamespace):
    __hash__ = object.__hash__  # a signal's sender must be hashable


def stand_in_app(*, rebalancing: bool = False, flow_active: bool = False) -> StandInApp:
    """Stand in for the Faust app the guards read: two stream partitions and a changelog, the flow stopped."""
    calls: list = []
    fake_app = StandInApp(
        calls=calls,
        consumer=FakeConsumer(calls, flow_active=flow_active, assignment={ORDERS, ORDERS_1, CHANGELOG}),
        flow_control=FakeFlowControl(calls, active=flow_active),
        rebalancing=rebalancing,
        should_stop=False,
        in_recovery=rebalancing,
        topics=SimpleNamespace(acking_topics={"orders"}),
        timers=[],
    )
    fake_app.on_rebalance_complete = Signal().with_default_sender(fake_app)
    fake_app.timer = lambda interval, name: lambda fun: fake_app.timers.append((interval, name, fun)) or fun
    return fake_app


async def test_a_failing_check_is_logged_and_does_not_raise(monkeypatch, caplog):
    watch = StallWatch(stand_in_app(), stall_after=5)

    async def broker_down() -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(watch, "_check", broker_down)
    await watch.check()  # the timer calling it goes on
    assert "check failed" in caplog.text and "broker down" in caplog.text


async def test_a_flow_left_stopped_outside_a_rebalance_is_restarted_stop_seek_clear_resume(caplog):
    fake_app = stand_in_app(rebalancing=False)
    fake_app.consumer._committed_offset[ORDERS] = 40  # ORDERS_1 never committed: from its earliest offset
    watch = StallWatch(fake_app, stall_after=0)
    await watch.check()
    # Stopped before the seek, cleared after it, resumed last: nothing fetched before the seek survives it, and
    # nothing fetched after it is cleared. Only stream partitions are sought, on the consumer's thread (seek_wait).
    assert fake_app.calls == [
        "stop_flow",
        "suspend",
        ("seek_wait", {ORDERS: 40, ORDERS_1: 0}),
        "clear",
        "resume",
        "resume_flow",
    ]
    assert fake_app.consumer.flow_active and fake_app.flow_control.active
    assert watch.flow_resumes == 1 and "left stopped outside a rebalance" in caplog.text


async def test_a_failed_seek_leaves_the_flow_stopped_for_the_next_try(caplog):
    fake_app = stand_in_app(rebalancing=False)
    fake_app.consumer.fail_seek = TimeoutError("broker slow")
    watch = StallWatch(fake_app, stall_after=0)
    await watch.check()
    assert "clear" not in fake_app.calls and "resume_flow" not in fake_app.calls
    assert not fake_app.consumer.flow_active and watch.flow_resumes == 0 and "check failed" in caplog.text


async def test_a_flow_stopped_during_a_rebalance_is_left_to_the_rebalance(caplog):
    fake_app = stand_in_app(rebalancing=True)
    watch = StallWatch(fake_app, stall_after=0)
    await watch.check()
    assert not fake_app.consumer.flow_active and watch.flow_resumes == 0 and fake_app.calls == []
    assert "has been rebalancing for over" in caplog.text


async def test_a_stalled_partition_is_sought_back_on_the_consumer_thread(caplog):
    fake_app = stand_in_app(flow_active=True)
    fake_app.consumer._committed_offset.update({ORDERS: 40, ORDERS_1: 7})
    fake_app.consumer.ends.update({ORDERS: 130, ORDERS_1: 7})
    watch = StallWatch(fake_app, stall_after=0)
    await watch.check()
    assert fake_app.calls == [("seek_wait", {ORDERS: 40})]  # the caught-up partition is left alone
    assert watch.reseeks == 1 and "seeking back to 40" in caplog.text


async def test_install_hooks_the_recovery_signal_and_the_timer():
    fake_app = stand_in_app(flow_active=True)
    watch = install(fake_app, stall_after=30)
    assert fake_app.timers == [(rebalance.CHECK_INTERVAL, "watch-stalled-partitions", watch.check)]
    # Faust's recovery sends it just before it resumes and seeks the stream partitions (tables or none).
    await fake_app.on_rebalance_complete.send()
    assert fake_app.calls == ["stop_flow"] and not fake_app.consumer.flow_active
    assert (watch.reseeks, watch.flow_resumes) == (0, 0)


def test_install_refuses_a_consumer_without_seek_wait_with_one_clear_message():
    fake_app = stand_in_app()
    consumer = fake_app.consumer  # as a Faust without seek_wait would make it
    fake_app.consumer = SimpleNamespace(
        **{n: getattr(consumer, n) for n in rebalance._CONSUMER_NEEDS if n != "seek_wait"}
    )
    with pytest.raises(FaustMismatch) as raised:
        install(fake_app, stall_after=30)
    message = str(raised.value)
    assert "app.consumer.seek_wait is missing" in message and "faust-streaming 0.15.3" in message
    assert fake_app.timers == [] and list(fake_app.on_rebalance_complete.iter_receivers(fake_app)) == []


def test_install_refuses_another_faust_version(monkeypatch):
    monkeypatch.setattr(rebalance, "_installed_faust", lambda: "0.16.0")
    with pytest.raises(
        FaustMismatch, match=r"faust-streaming 0\.16\.0 is installed.*written for faust-streaming 0\.15\.3"
    ):
        check_faust(stand_in_app())


def test_the_installed_faust_has_everything_the_guards_use_and_install_starts_nothing():
    app = faust.App("test-rebalance-guards", broker="kafka://127.0.0.1:1", store="memory://")
    check_faust(app)
    install(app, stall_after=30)
    assert app._consumer is None and "flow_control" not in vars(app)  # checked on Faust's classes, nothing created


def test_the_module_imports_nothing_from_agents_nor_the_app():
    code = (
        "import sys, streams.rebalance; print(sorted(m for m in sys.modules"
        " if m.split('.')[0] == 'agents' or m in ('streams.app', 'streams.settings')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
