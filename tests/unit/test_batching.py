"""Requests served together: one call for the requests made at once, in order, errors to their own batch."""

from __future__ import annotations

import asyncio
import time

import pytest

from streams.batching import Batcher


class Server:
    """Answers each request with its double; records the batches; fails the batches that hold a negative."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    async def __call__(self, requests: list[int]) -> list[int]:
        self.batches.append(requests)
        await asyncio.sleep(0.01)
        if any(r < 0 for r in requests):
            raise ValueError("negative")
        return [2 * r for r in requests]


async def test_requests_made_at_once_go_in_one_call_in_order_without_waiting_for_the_linger() -> None:
    server = Server()
    batcher = Batcher(server, gather=4, linger=5.0)
    started = time.monotonic()
    assert await asyncio.gather(*(batcher(i) for i in range(4))) == [0, 2, 4, 6]
    assert time.monotonic() - started < 1.0  # the fourth completed the batch: no linger
    assert server.batches == [[0, 1, 2, 3]]


async def test_a_lone_request_waits_the_linger_then_goes_alone() -> None:
    server = Server()
    batcher = Batcher(server, gather=4, linger=0.2)
    started = time.monotonic()
    assert await batcher(5) == 10
    assert 0.2 <= time.monotonic() - started < 0.6
    assert server.batches == [[5]]


async def test_requests_made_during_a_call_go_with_the_next_and_batches_are_bounded() -> None:
    server = Server()
    batcher = Batcher(server, gather=1, linger=0.0, max_batch=3)
    first = asyncio.ensure_future(batcher(1))
    await asyncio.sleep(0.005)  # the first call is on its way
    rest = [asyncio.ensure_future(batcher(i)) for i in range(2, 7)]
    assert await first == 2
    assert await asyncio.gather(*rest) == [4, 6, 8, 10, 12]
    assert server.batches == [[1], [2, 3, 4], [5, 6]]


async def test_a_failing_call_fails_its_own_requests_only() -> None:
    server = Server()
    batcher = Batcher(server, gather=2, linger=0.0)
    failed = await asyncio.gather(batcher(1), batcher(-1), return_exceptions=True)
    assert [type(r) for r in failed] == [ValueError, ValueError]
    assert await batcher(3) == 6  # the next call is served


async def test_an_answer_per_request_or_every_request_fails() -> None:
    async def short(requests: list[int]) -> list[int]:
        return requests[:-1]

    batcher = Batcher(short, gather=2, linger=0.0)
    answers = await asyncio.gather(batcher(1), batcher(2), return_exceptions=True)
    assert all(isinstance(a, RuntimeError) and "1 answers to 2 requests" in str(a) for a in answers)


async def test_a_cancelled_caller_does_not_disturb_the_others_and_close_cancels_the_waiting() -> None:
    server = Server()
    batcher = Batcher(server, gather=3, linger=0.05)
    gone, kept = asyncio.ensure_future(batcher(1)), asyncio.ensure_future(batcher(2))
    await asyncio.sleep(0)
    gone.cancel()
    assert await kept == 4
    assert server.batches == [[1, 2]]  # the cancelled caller's request was queued: served, its answer dropped

    waiting = asyncio.ensure_future(batcher(3))
    await asyncio.sleep(0)
    await batcher.close()
    with pytest.raises(asyncio.CancelledError):
        await waiting


def test_bad_sizes_are_refused() -> None:
    async def serve(requests: list[int]) -> list[int]:
        return requests

    with pytest.raises(ValueError):
        Batcher(serve, gather=0, linger=0.0)


async def test_an_answer_that_is_an_exception_is_raised_to_its_own_caller_only() -> None:
    async def serve(requests: list[int]) -> list[int | Exception]:
        return [ValueError(f"bad {r}") if r == 2 else r for r in requests]

    batcher = Batcher(serve, gather=3, linger=1.0)
    answers = await asyncio.gather(batcher(1), batcher(2), batcher(3), return_exceptions=True)
    assert answers[0] == 1 and answers[2] == 3
    assert isinstance(answers[1], ValueError) and str(answers[1]) == "bad 2"
