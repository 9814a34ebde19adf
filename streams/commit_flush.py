"""An offset commit waits for the records produced before it, not for the producer buffer to run dry.

Before it commits offsets, Faust flushes its producer (``Consumer._commit_offsets`` →
``Producer.flush`` → ``ProducerBuffer.flush``), so that every record sent on behalf of the
events being committed — above all the table changelog records — reaches Kafka first. But
``ProducerBuffer.flush`` (faust-streaming 0.15.3) waits until the buffer is *empty*: while
a burst goes on, each handled digest puts one more changelog record into the buffer, the
buffer is seldom empty, and the first commit of a burst lasts as long as the burst (logged
as ``Timer commit is overlapping (interval=2.8 runtime=10.5)``). Meanwhile no offset is
committed, so a crash in a burst redelivers all of it (the dedupe table then ignores it:
work, not duplicates).

``install`` makes the flush wait for the records put into the buffer before the flush
began, in order (the buffer is a FIFO queue): everything the commit needs, since an event is
acknowledged only after its table write, and offsets are chosen before the flush starts.
The 0.1 s wait for progress after which Faust gives up on a stalled buffer is kept. It
refuses to install unless faust-streaming is the pinned version with the internals used.
"""

from __future__ import annotations

import asyncio
from importlib import metadata
from typing import Any

from faust.transport.producer import ProducerBuffer

from streams.rebalance import FAUST_VERSION, FaustMismatch

__all__ = ["install"]

#: What of Faust's ProducerBuffer is used (its ``message_sent`` event is made in ``__post_init__``).
_NEEDS = ("put", "_send_pending", "_handle_pending", "flush", "__post_init__", "size", "state")


async def _flush_what_was_put(self: Any) -> None:
    """Wait until the records put before this call are handed to the Kafka client (Faust's flush, bounded)."""
    target = self._puts_counted
    while self.size and self._sends_counted < target:
        if self.state != "running":
            raise RuntimeError("Cannot flush: Producer not Running")
        self.message_sent.clear()
        try:
            await asyncio.wait_for(self.message_sent.wait(), timeout=0.1)
        except TimeoutError:
            return


def install(app: Any) -> None:
    """Bound the producer flush of every offset commit (see the module). Idempotent."""
    installed = metadata.version("faust-streaming")
    missing = [f"ProducerBuffer.{name}" for name in _NEEDS if not hasattr(ProducerBuffer, name)]
    if installed != FAUST_VERSION or missing:
        raise FaustMismatch(
            f"streams.commit_flush: faust-streaming {installed} is installed{', lacking ' if missing else ''}"
            f"{', '.join(missing)}; the bounded commit flush was written for {FAUST_VERSION}: refusing to start."
        )
    if app.conf.producer_threaded or getattr(ProducerBuffer, "_lunch_bounded", False):
        return  # the threaded producer keeps Faust's flush
    put, send_pending = ProducerBuffer.put, ProducerBuffer._send_pending

    def counted_put(self: Any, fut: Any) -> None:
        put(self, fut)
        self._puts_counted += 1

    async def counted_send(self: Any, fut: Any) -> None:
        try:
            await send_pending(self, fut)
        finally:
            self._sends_counted += 1

    ProducerBuffer._puts_counted = 0
    ProducerBuffer._sends_counted = 0
    ProducerBuffer.put = counted_put
    ProducerBuffer._send_pending = counted_send
    ProducerBuffer.flush = _flush_what_was_put
    ProducerBuffer._lunch_bounded = True
