"""Two guards against records lost around rebalances (faust-streaming 0.15.3).

Upstream faust-streaming issue #596 (open, no fix released): at the end of table
recovery Faust resumes the stream partitions and seeks them to their committed
offsets while the consumer flow is active (aiokafka keeps fetching), then
``flow_control.resume()`` clears every stream buffer. Records fetched in that window
vanish with the buffers; the commit stalls behind the hole, or Faust takes the jump
for a gap in the log and commits over records it never handed to an agent.

1. ``StallWatch.hold_fetching`` runs on ``app.on_rebalance_complete``, which Faust's
   recovery sends just before that resume and seek (with or without tables): it stops
   the consumer's flow, so nothing is fetched until recovery resumes the flow itself,
   after the seek and after the buffers were cleared.
2. ``StallWatch.check`` (a timer) catches whatever still slips through: a partition
   whose committed offset is below its end, with no message of its topic in flight,
   and whose committed offset has not moved for ``stall_after`` seconds, is sought
   back to its committed offset. Records processed after the gap come again; the
   handlers must be idempotent, so they cost ignored duplicates. It also restarts a
   consumer flow left stopped outside any rebalance for as long, in the sound order
   (stop flow, seek to committed, clear the buffers, resume flow), and warns while a
   rebalance lasts longer than that, each time that long again.

All seeks go through ``consumer.seek_wait``, which runs on aiokafka's own thread.
``install`` refuses to start when the Faust internals relied on are missing or the
installed faust-streaming is not the pinned one. Nothing happens at import.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any

__all__ = [
    "CHECK_INTERVAL",
    "FAUST_VERSION",
    "FaustMismatch",
    "Lasting",
    "PartitionProgress",
    "StallDetector",
    "StallWatch",
    "check_faust",
    "install",
]

log = logging.getLogger(__name__)

#: Seconds between two checks of the partitions.
CHECK_INTERVAL = 5.0
#: The faust-streaming these guards were written for (and read): the pin of constraints.txt.
FAUST_VERSION = "0.15.3"

#: What the guards use of Faust: of the app, of its consumer, of its flow control.
_APP_NEEDS = (
    "consumer",
    "flow_control",
    "topics",
    "timer",
    "on_rebalance_complete",
    "rebalancing",
    "in_recovery",
    "should_stop",
)
_CONSUMER_NEEDS = (
    "seek_wait",
    "stop_flow",
    "resume_flow",
    "flow_active",
    "assignment",
    "highwater",
    "earliest_offsets",
    "unacked",
    "_committed_offset",
)
_FLOW_CONTROL_NEEDS = ("suspend", "resume", "clear", "is_active")


class FaustMismatch(RuntimeError):
    """The installed Faust is not the one the guards were written for."""


@dataclass(frozen=True, slots=True)
class PartitionProgress:
    """What the watchdog sees of one partition: next offset to commit, end offset, work in flight."""

    committed: int | None
    end: int | None
    busy: bool


class Lasting:
    """Pure policy: has a condition held for ``after`` seconds? (Then its clock starts again.)

    ``began`` is when the condition started holding, whatever the clock did since (None: it does not hold).
    """

    def __init__(self, after: float) -> None:
        self.after = after
        self.since: float | None = None
        self.began: float | None = None

    def observe(self, holds: bool, now: float) -> bool:
        if not holds:
            self.since = self.began = None
            return False
        if self.since is None:
            self.since = now
        if self.began is None:
            self.began = now
        if now - self.since >= self.after:
            self.since = now
            return True
        return False


class StallDetector:
    """Pure policy: which partitions have records left, nothing in flight, and no progress for ``stall_after`` s."""

    def __init__(self, stall_after: float) -> None:
        self.stall_after = stall_after
        self._clocks: dict[Hashable, tuple[int | None, Lasting]] = {}

    def observe(self, progress: Mapping[Hashable, PartitionProgress], now: float) -> list[Hashable]:
        """Record one look at every partition; return those stalled (their clock starts again)."""
        stalled: list[Hashable] = []
        clocks: dict[Hashable, tuple[int | None, Lasting]] = {}
        for tp, seen in progress.items():
            if seen.busy or seen.end is None or (seen.committed or 0) >= seen.end:
                continue  # not waiting on anything: its clock is dropped
            known = self._clocks.get(tp)
            # First seen behind, or its committed offset moved since: the clock starts over.
            clock = known[1] if known and known[0] == seen.committed else Lasting(self.stall_after)
            if clock.observe(True, now):
                stalled.append(tp)
            clocks[tp] = (seen.committed, clock)
        self._clocks = clocks
        return stalled


class StallWatch:
    """The guards of one Faust app (see the module docstring); ``reseeks``/``flow_resumes`` count their repairs."""

    def __init__(self, app: Any, stall_after: float) -> None:
        self.app = app
        self.stall_after = stall_after
        self.detector = StallDetector(stall_after)
        self.flow_held = Lasting(stall_after)
        self.long_rebalance = Lasting(stall_after)
        self.reseeks = 0
        self.flow_resumes = 0

    async def hold_fetching(self, sender: Any = None, **kwargs: Any) -> None:
        """Receiver of ``app.on_rebalance_complete``: stop fetching until recovery resumes the flow (guard 1)."""
        self.app.consumer.stop_flow()

    def stream_partitions(self) -> set[Any]:
        """The assigned partitions of the topics whose records are acknowledged (the streams, not changelogs)."""
        acked_topics = self.app.topics.acking_topics
        return {tp for tp in self.app.consumer.assignment() if tp.topic in acked_topics}

    def progress(self) -> dict[Any, PartitionProgress]:
        consumer = self.app.consumer
        # Faust keeps no public view of these; they are the consumer's own bookkeeping.
        committed: Mapping[Any, int | None] = consumer._committed_offset
        in_flight = {m.tp.topic for m in list(consumer.unacked) if not m.acked}
        return {
            tp: PartitionProgress(committed.get(tp), consumer.highwater(tp), tp.topic in in_flight)
            for tp in self.stream_partitions()
        }

    async def committed_offsets(self, tps: Iterable[Any]) -> dict[Any, int]:
        """Where each partition resumes: its committed offset, or its earliest one if it has none yet."""
        consumer = self.app.consumer
        offsets = {tp: consumer._committed_offset.get(tp) for tp in tps}
        never = [tp for tp, offset in offsets.items() if offset is None]
        if never:
            offsets.update(await consumer.earliest_offsets(*never))
        return offsets

    async def check(self) -> None:
        """One look at the partitions; a failure (e.g. the broker is down) is logged, the next look tries again."""
        try:
            await self._check()
        except Exception as exc:
            log.warning("stall watchdog: check failed: %r", exc)

    async def _check(self) -> None:
        app, now = self.app, time.monotonic()
        consumer = app.consumer
        if self.long_rebalance.observe(app.rebalancing and not app.should_stop, now):
            log.warning(
                "the worker has been rebalancing for over %.0fs (table recovery running: %s)",
                self.stall_after,
                app.in_recovery,
            )
        if app.rebalancing or app.should_stop:
            self.flow_held.observe(False, now)
            return
        if self.flow_held.observe(not (consumer.flow_active and app.flow_control.is_active()), now):
            log.warning(
                "the consumer flow was left stopped outside a rebalance for %.0fs; resuming it "
                "from the committed offsets",
                self.stall_after,
            )
            await self.restart_flow()
        if not consumer.flow_active:
            return
        progress = self.progress()
        stalled = self.detector.observe(progress, now)
        if not stalled:
            return
        offsets = await self.committed_offsets(stalled)
        for tp in stalled:
            seen = progress[tp]
            log.warning(
                "partition %s-%s: committed offset %s is below its end %s and nothing consumed it for %.0fs; "
                "seeking back to %s",
                tp.topic,
                tp.partition,
                seen.committed,
                seen.end,
                self.stall_after,
                offsets[tp],
            )
        await consumer.seek_wait(offsets)
        self.reseeks += len(stalled)

    async def restart_flow(self) -> None:
        """Stop the flow, seek the streams to committed, clear their buffers, resume: nothing fetched is dropped."""
        app = self.app
        app.consumer.stop_flow()
        app.flow_control.suspend()
        offsets = await self.committed_offsets(self.stream_partitions())
        if offsets:
            await app.consumer.seek_wait(offsets)  # on aiokafka's thread; a failure leaves the flow stopped
        app.flow_control.clear()
        app.flow_control.resume()  # clears again, then lets records into the buffers
        app.consumer.resume_flow()
        self.flow_resumes += 1


def _installed_faust() -> str:
    try:
        return metadata.version("faust-streaming")
    except metadata.PackageNotFoundError:
        return "none"


def _declares(obj: Any, name: str) -> bool:
    """Does ``obj`` (an instance or a class) have ``name``, as an attribute or a class annotation?"""
    if not isinstance(obj, type) and name in getattr(obj, "__dict__", {}):
        return True
    cls = obj if isinstance(obj, type) else type(obj)
    return any(name in vars(k) or name in vars(k).get("__annotations__", {}) for k in cls.__mro__)


def check_faust(app: Any) -> None:
    """Raise ``FaustMismatch`` naming what is missing, unless Faust is the pinned one with every internal we use.

    Looks at classes where Faust would create the object (the consumer, the flow control), so nothing is started.
    """
    installed = _installed_faust()
    problems = [f"faust-streaming {installed} is installed"] if installed != FAUST_VERSION else []
    problems += [f"app.{name} is missing" for name in _APP_NEEDS if not _declares(app, name)]
    made = getattr(app, "__dict__", {})  # the objects the app already created (Faust caches them there)
    if _declares(app, "consumer"):
        consumer = made.get("consumer") or made.get("_consumer")
        consumer = app.transport.Consumer if consumer is None else consumer
        problems += [f"app.consumer.{n} is missing" for n in _CONSUMER_NEEDS if not _declares(consumer, n)]
    if _declares(app, "flow_control"):
        from mode.utils.queues import FlowControlEvent  # what App.flow_control creates

        flow_control = made.get("flow_control", FlowControlEvent)
        problems += [f"app.flow_control.{n} is missing" for n in _FLOW_CONTROL_NEEDS if not _declares(flow_control, n)]
    if _declares(app, "topics") and not _declares(app.topics, "acking_topics"):
        problems.append("app.topics.acking_topics is missing")
    if _declares(app, "on_rebalance_complete") and not callable(getattr(app.on_rebalance_complete, "connect", None)):
        problems.append("app.on_rebalance_complete.connect is missing")
    if problems:
        raise FaustMismatch(
            f"streams.rebalance: {'; '.join(problems)}. The rebalance guards were written for faust-streaming "
            f"{FAUST_VERSION} (the pin in constraints.txt) and rely on its internals: refusing to start."
        )


def install(app: Any, *, stall_after: float) -> StallWatch:
    """Check Faust (``check_faust``), hook guard 1 on the app's recovery, start the watchdog timer; once per app.

    Table-agnostic: the hook is an app signal, so tables defined before or after (or none) are covered. It must run
    before the worker starts (the timer is an app task, started with the app).
    """
    check_faust(app)
    watch = StallWatch(app, stall_after)
    app.on_rebalance_complete.connect(watch.hold_fetching)
    app.timer(CHECK_INTERVAL, name="watch-stalled-partitions")(watch.check)
    return watch
