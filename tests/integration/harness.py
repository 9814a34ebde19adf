"""Running a real ``faust worker`` for integration tests, and small helpers around it."""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")
#: The operator's token of every test worker (``worker_env``): the pages but the probes and metrics need it.
OPS_TOKEN = "ops-token-of-the-integration-SECRET-7c1e9b2d"
#: The header that carries it.
AUTH = {"Authorization": f"Bearer {OPS_TOKEN}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


#: Every worker log of the session, for the final secrets check.
WORKER_LOGS: list[Path] = []
#: Every app id a worker ran with, so their topics can be deleted at the end.
APP_IDS: set[str] = set()


#: Worker log lines worth showing when a test fails: problems and the rebalance story.
NOTABLE_LOG_LINE = re.compile(r"WARNING|ERROR|CRITICAL|Traceback|Recovery\]|rebalanc|[Ss]eek|Worker ready")


#: Lines of a worker's own shutdown (the test stopped it before its report is made).
SHUTDOWN_LOG_LINE = re.compile(r"Stopping\.\.\.|Stopped!|Signal received|Gathering|[Ss]hutting down|Closing event loop")


def log_excerpt(text: str, notable: int = 80, tail: int = 40) -> str:
    """The last ``notable`` notable lines of a worker log, then its last ``tail`` lines before any shutdown."""
    lines = [line for line in text.splitlines() if not SHUTDOWN_LOG_LINE.search(line)]
    picked = [line for line in lines[:-tail] if NOTABLE_LOG_LINE.search(line)][-notable:]
    return "\n".join([*picked, "[... last lines ...]", *lines[-tail:]])


class WorkerProcess:
    """``faust -A streams.app worker`` in a subprocess, its output in a log file."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        WORKER_LOGS.append(log_path)
        APP_IDS.add(env["APP_ID"])
        # A static member id of its own (kept across restarts of this process): two workers must never share one.
        self.env = {"WORKER_INSTANCE_ID": unique_name("worker"), **os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._offset = 0

    def start(self, timeout: float = 90.0) -> WorkerProcess:
        log = self.log_path.open("ab")
        self._offset = self.log_path.stat().st_size
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "faust", "-A", "streams.app", "worker", "-l", "info"],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.logs()[-4000:]}")
            if "Ready" in self.logs(since_start=True):
                return self
            time.sleep(0.2)
        raise TimeoutError(f"worker not ready in {timeout}s:\n{self.logs()[-4000:]}")

    def logs(self, since_start: bool = False) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[self._offset :] if since_start else text

    def stop(self, timeout: float = 30.0) -> None:
        """Stop cleanly (SIGTERM → the worker leaves its consumer group)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


async def eventually(
    probe: Callable[[], T | Awaitable[T | None] | None], timeout: float = 30.0, interval: float = 0.1
) -> T:
    """Poll ``probe`` (sync or async) until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout}s (last value: {value!r})")
        await asyncio.sleep(interval)
