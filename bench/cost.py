"""Cost per digest: the project's worker beside a bare aiokafka pipeline (``bench.bare``), same data, same sandbox.

    .venv/bin/python -m bench.cost [--pairs 3] [--cafes 2000] [--concurrency 8]
    .venv/bin/python -m bench.cost --pairs 1 --only worker --profile /tmp/worker.txt   # a py-spy profile instead

One database filled once (``bench.notifications.fill``: ``--cafes`` cafes x 3 orders), one sandbox Bot API (no
limits, the worker's throttle opened wide as in ``bench.notifications throughput``). Each run starts its consumer
on a fresh topic (the worker under a fresh app id too: an empty dedupe table), waits until it is ready, then
produces the whole burst of deadline events at once and ends when the sandbox has received every digest.

Measured per run: the consumer process's CPU (user + system of all its threads, ``/proc/<pid>/stat``) from the
first event produced to the last message received, as seconds per 1,000 digests, and digests/s over the same span.
Runs alternate in ABBA order (worker, bare, bare, worker, ...) so that drift of the machine hits both; the ratio
is the worker's CPU per digest over the bare pipeline's, per pair and as the median of the pairs.

The bare pipeline lacks, by construction, what makes the worker a service: see ``bench.bare``'s docstring.
With ``--profile FILE`` each run is sampled by py-spy (``.venv/bin/pip install py-spy``; root or ptrace
rights): the figures then carry py-spy's own cost and are not measurements; the top inclusive shares are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaProducer

from bench.notifications import DAY, TOKEN, fill
from sandbox.telegram import ReceivedMessage, run_in_thread
from streams.kafka_admin import TopicSpec, bootstrap_servers, ensure_topics
from streams.settings import Settings
from tests.conftest import FreshDatabase
from tests.integration.harness import OPS_TOKEN, REPO, WorkerProcess, free_port, unique_name
from tests.integration.kafka_io import delete_app_topics

PARTITIONS = 8


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of process ``pid`` so far (all its threads)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()  # fields from the 3rd (state) on
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


class Tally:
    """What the sandbox received in the current run (its ``on_message`` runs in the sandbox's thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.chats: set[int] = set()
            self.statuses: Counter[int] = Counter()
            self.last = 0.0

    def __call__(self, message: ReceivedMessage) -> None:
        with self._lock:
            self.statuses[message.status] += 1
            if message.delivered and message.chat_id is not None:
                self.chats.add(message.chat_id)
                self.last = max(self.last, message.received_at)


@dataclass(frozen=True)
class Run:
    kind: str
    digests: int
    seconds: float
    user: float
    system: float
    statuses: dict[int, int]

    @property
    def cpu(self) -> float:
        return self.user + self.system

    @property
    def cpu_per_1000(self) -> float:
        return self.cpu / self.digests * 1000

    @property
    def rate(self) -> float:
        return self.digests / self.seconds

    def line(self) -> str:
        others = {s: n for s, n in self.statuses.items() if s != 200}
        return (
            f"{self.kind:6} {self.digests} digests in {self.seconds:6.2f} s -> {self.rate:6.1f} digests/s; "
            f"CPU {self.cpu:6.2f} s (user {self.user:.2f}, system {self.system:.2f})"
            f" -> {self.cpu_per_1000:5.2f} s per 1,000 digests"
            + (f"; answers other than 200: {others}" if others else "")
        )


class Bench:
    def __init__(self, db_url: str, cafes: int, concurrency: int, profile: Path | None) -> None:
        self.db_url, self.cafes, self.concurrency, self.profile = db_url, cafes, concurrency, profile
        self.tally = Tally()
        self.fake = run_in_thread(expected_token=TOKEN, enforce_limits=False, on_message=self.tally)
        self.broker = Settings.from_env().kafka_broker_url
        self.names: list[str] = []
        self.workdir = Path(tempfile.mkdtemp(prefix="bench-cost-"))

    async def burst(self, topic: str, pid: int) -> tuple[float, float, float]:
        """Produce every event at once; wait for every digest; the span and the consumer's CPU over it."""
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers(self.broker), acks="all", linger_ms=5)
        await producer.start()
        try:
            values = [(str(c).encode(), json.dumps({"cafe_id": c, "date": DAY.isoformat()}).encode()) for c in self.ids]
            self.tally.reset()
            (user, system), started = cpu_seconds(pid), time.time()
            sent = [await producer.send(topic, value=value, key=key) for key, value in values]
            await asyncio.gather(*sent)
        finally:
            await producer.stop()
        seen, moved = 0, time.monotonic()
        while (count := len(self.tally.chats)) < len(self.ids):
            if count > seen:
                seen, moved = count, time.monotonic()
            elif time.monotonic() - moved > 60:
                raise TimeoutError(f"{count} of {len(self.ids)} digests, none for 60 s")
            await asyncio.sleep(0.05)
        user_after, system_after = cpu_seconds(pid)
        return self.tally.last - started, user_after - user, system_after - system

    async def worker(self) -> Run:
        name = unique_name("cost")
        self.names.append(name)
        env = {
            "APP_ID": name,
            "TOPIC_PREFIX": f"{name}.",
            "WEB_PORT": str(free_port()),
            "OPS_TOKEN": OPS_TOKEN,
            "DATABASE_URL": self.db_url,
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_API_BASE_URL": self.fake.base_url,
            "BROKER_SESSION_TIMEOUT": "6",
            "DIGEST_CONCURRENCY": str(self.concurrency),
            "TELEGRAM_GLOBAL_RATE": "1000000",
            "TELEGRAM_CHAT_INTERVAL": "0",
            "TELEGRAM_GROUP_PER_MINUTE": "1000000",
        }
        worker = WorkerProcess(env, self.workdir / f"{name}.log").start()
        assert worker.proc is not None
        try:
            spent = await self.measured(name, f"{name}.deadline-passed", worker.proc.pid)
        finally:
            worker.stop()
        return Run("worker", len(self.ids), *spent, dict(self.tally.statuses))

    async def measured(self, name: str, topic: str, pid: int) -> tuple[float, float, float]:
        """The burst on ``topic`` consumed by process ``pid``, sampled by py-spy with ``--profile``."""
        if self.profile is None:
            return await self.burst(topic, pid)
        out = self.profile.with_name(f"{self.profile.stem}-{name}.txt")
        spy = await asyncio.create_subprocess_exec(
            *(str(Path(sys.executable).parent / "py-spy"), "record", "--gil", "--format", "raw", "--rate", "250"),
            *("-o", str(out), "--pid", str(pid)),
            stdout=subprocess.DEVNULL,
        )
        try:
            await asyncio.sleep(1.0)
            return await self.burst(topic, pid)
        finally:
            spy.send_signal(signal.SIGINT)
            await asyncio.wait_for(spy.wait(), 30)
            print(top_inclusive(out))

    async def bare(self) -> Run:
        name = unique_name("cost")
        self.names.append(name)
        topic = f"{name}.deadline-passed"
        await ensure_topics({"bootstrap_servers": bootstrap_servers(self.broker)}, [TopicSpec(topic, PARTITIONS)])
        log = self.workdir / f"{name}.log"
        command = [sys.executable, "-m", "bench.bare", "--topic", topic, "--group", name]
        command += ["--bootstrap", ",".join(bootstrap_servers(self.broker)), "--database-url", self.db_url]
        command += ["--api-base", self.fake.base_url, "--token", TOKEN, "--concurrency", str(self.concurrency)]
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(*command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while "ready" not in log.read_text():
                if proc.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"bench.bare did not start:\n{log.read_text()[-2000:]}")
                await asyncio.sleep(0.1)
            spent = await self.measured(name, topic, proc.pid)
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 30)
        return Run("bare", len(self.ids), *spent, dict(self.tally.statuses))

    async def run(self, pairs: int, only: str | None) -> list[Run]:
        self.ids = [cafe for cafe, _ in await fill(self.db_url, self.cafes)]
        runs: list[Run] = []
        try:
            for pair in range(pairs):
                order = ("worker", "bare") if pair % 2 == 0 else ("bare", "worker")
                for kind in order:
                    if only in (None, kind):
                        runs.append(await getattr(self, kind)())
                        print(f"pair {pair + 1}: {runs[-1].line()}", flush=True)
        finally:
            self.fake.stop()
            await delete_app_topics(self.broker, self.names)
        return runs


#: Frames every busy sample holds (the CLI, the event loop): no information.
_OUTER = ("click/", "runpy", "faust/cli/", "mode/worker.py", "faust/__main__", "bench/bare.py:1", "base_events.py:6")


def top_inclusive(raw: Path, count: int = 40) -> str:
    """The frames with the largest inclusive share of the busy samples of py-spy's ``--format raw`` stacks.

    Samples whose innermost frame is the selector's wait are idle (py-spy counts a thread waiting in
    ``epoll`` as active) and left out.
    """
    total, inclusive = 0, Counter[str]()
    for line in raw.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        frames = stack.split(";")
        if not stack or not samples.isdigit() or frames[-1].startswith(("EpollSelector.select", "select (")):
            continue
        total += int(samples)
        for frame in set(frames):
            inclusive[frame] += int(samples)
    rows = [
        f"{n / total:6.1%}  {frame}"
        for frame, n in inclusive.most_common()
        if not any(part in frame for part in _OUTER)
    ]
    return f"py-spy {raw}: {total} busy samples, inclusive shares:\n" + "\n".join(rows[:count])


def report(runs: list[Run]) -> None:
    workers = [r for r in runs if r.kind == "worker"]
    bares = [r for r in runs if r.kind == "bare"]
    print(f"\nload average (1, 5, 15 min) at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for kind, group in (("worker", workers), ("bare", bares)):
        if group:
            cpu = statistics.median(r.cpu_per_1000 for r in group)
            rate = statistics.median(r.rate for r in group)
            spread = f"{min(r.cpu_per_1000 for r in group):.2f}-{max(r.cpu_per_1000 for r in group):.2f}"
            print(f"{kind:6} median: {cpu:5.2f} CPU s per 1,000 digests ({spread}), {rate:6.1f} digests/s")
    if workers and bares:
        ratios = [w.cpu_per_1000 / b.cpu_per_1000 for w, b in zip(workers, bares, strict=False)]
        shown = ", ".join(f"{r:.2f}" for r in ratios)
        print(f"ratio worker/bare, CPU per digest: median {statistics.median(ratios):.2f}x (pairs: {shown})")
        speed = statistics.median(w.rate / b.rate for w, b in zip(workers, bares, strict=False))
        print(f"ratio worker/bare, digests/s: median {speed:.2f}x")


def busy() -> list[str]:
    """Other pytest or benchmark processes on the machine (they skew every figure)."""
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout.splitlines()
    mine = {os.getpid(), os.getppid()}
    return [
        line.strip()
        for line in out
        if ("pytest" in line or "bench." in line)
        and int(line.split()[0]) not in mine
        and "bench.bare" not in line
        and "ps -eo" not in line
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--cafes", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--only", choices=["worker", "bare"])
    parser.add_argument("--profile", type=Path, help="record each worker run with py-spy (raw stacks, FILE-<id>.txt)")
    args = parser.parse_args()
    print(f"load average (1, 5, 15 min) at the start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for line in busy():
        print(f"warning: another process is running: {line[:150]}")
    db = FreshDatabase(unique_name("lunch_cost").replace("-", "_")).create()
    try:
        runs = asyncio.run(Bench(db.url, args.cafes, args.concurrency, args.profile).run(args.pairs, args.only))
    finally:
        db.drop()
    report(runs)


if __name__ == "__main__":
    main()
