"""The commit's producer flush waits for what was put before it, even while more keeps coming (a burst)."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

from faust.transport.producer import ProducerBuffer

from streams.commit_flush import install

APP = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))


def record(number: int, sent: list[int]) -> SimpleNamespace:
    async def publish_message(fut: object, wait: bool = False) -> None:
        await asyncio.sleep(0.002)  # the Kafka client taking the record
        sent.append(number)

    return SimpleNamespace(message=SimpleNamespace(channel=SimpleNamespace(publish_message=publish_message)))


async def test_the_flush_of_a_commit_ends_while_a_burst_goes_on():
    install(APP)
    install(APP)  # idempotent
    buffer = ProducerBuffer()
    buffer.app = APP
    await buffer.start()
    sent: list[int] = []
    counter = iter(range(1_000_000))
    for _ in range(20):
        buffer.put(record(next(counter), sent))

    async def burst() -> None:  # one more changelog record every millisecond, as handled digests write the table
        while True:
            buffer.put(record(next(counter), sent))
            await asyncio.sleep(0.001)

    producing = asyncio.ensure_future(burst())
    try:
        await asyncio.sleep(0.01)
        before = buffer._puts_counted
        started = time.monotonic()
        await asyncio.wait_for(buffer.flush(), 5)  # Faust's own flush waits until the burst ends: here, never
        assert time.monotonic() - started < 2
        assert sorted(sent)[:before] == list(range(before))  # everything put before the flush was sent, in order
        assert buffer.size > 0  # the burst goes on
    finally:
        producing.cancel()
        await asyncio.wait_for(buffer.flush(), 5)  # the burst is over: the rest goes out
        assert buffer.size == 0
        await buffer.stop()
