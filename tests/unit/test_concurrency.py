"""Bounded task pool and per-key locks: several events at once, each key's events in order."""

from __future__ import annotations

import asyncio

import pytest

from streams.concurrency import KeyedLocks, KeyedPool, TaskPool


async def test_the_pool_never_runs_more_than_its_size_and_finishes_everything():
    pool, running, peak, done = TaskPool(3), 0, 0, []

    async def job(n: int) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        done.append(n)

    for n in range(10):
        await pool.start(lambda n=n: job(n))
    await pool.join()
    assert peak == 3
    assert sorted(done) == list(range(10))
    assert len(pool) == 0


async def test_a_failing_job_frees_its_slot():
    pool = TaskPool(1)

    async def boom() -> None:
        raise RuntimeError("boom")

    await pool.start(boom)
    await asyncio.wait_for(pool.start(lambda: asyncio.sleep(0)), 1)  # would hang if the slot leaked
    await pool.join()


def test_a_pool_needs_a_slot():
    with pytest.raises(ValueError):
        TaskPool(0)


async def test_one_key_at_a_time_other_keys_in_parallel_and_no_lock_is_kept():
    locks, order, inside = KeyedLocks(), [], set()

    async def work(key: str, n: int) -> None:
        async with locks.hold(key):
            assert key not in inside
            inside.add(key)
            order.append((key, n))
            await asyncio.sleep(0.01)
            inside.discard(key)

    await asyncio.gather(work("a", 1), work("a", 2), work("b", 1), work("a", 3))
    assert [n for key, n in order if key == "a"] == [1, 2, 3]
    assert order.index(("b", 1)) < order.index(("a", 2))  # b did not wait behind a
    assert len(locks) == 0


async def test_a_waiter_cancelled_or_failing_leaves_no_lock_behind():
    locks = KeyedLocks()
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold_a() -> None:
        async with locks.hold("a"):
            holding.set()
            await release.wait()

    first = asyncio.ensure_future(hold_a())
    await holding.wait()
    waiter = asyncio.ensure_future(hold_a())  # waits behind the first
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    release.set()
    await first
    with pytest.raises(RuntimeError):
        async with locks.hold("b"):
            raise RuntimeError("the block failed")
    assert len(locks) == 0
    async with locks.hold("a"):  # and the key can be held again
        pass


async def test_a_keyed_pool_runs_keys_apart_one_key_in_order_and_acks_what_was_handled():
    pool, acked, order, running, peak = KeyedPool(2), [], [], set(), 0

    def job(event: str, key: str, handled: bool = True):
        async def run() -> bool:
            nonlocal peak
            running.add(event)
            peak = max(peak, len(running))
            await asyncio.sleep(0.01)
            order.append((key, event))
            running.discard(event)
            return handled

        return run

    async def ack(event: str) -> None:
        acked.append(event)

    for event, key in (("a1", "a"), ("b1", "b"), ("a2", "a"), ("b2", "b")):
        await pool.submit(event, key, job(event, key, handled=event != "b2"), ack)
    await pool.join()
    assert peak == 2 and len(pool) == 0
    assert [e for k, e in order if k == "a"] == ["a1", "a2"] and [e for k, e in order if k == "b"] == ["b1", "b2"]
    assert sorted(acked) == ["a1", "a2", "b1"]  # b2 was not handled: left for redelivery
