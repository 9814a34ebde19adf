"""DueQueue: an event waits for its time without holding the stream, a rebalance or a shutdown."""

from __future__ import annotations

from types import SimpleNamespace

from streams.due_queue import DueQueue


def event(partition: int = 0) -> SimpleNamespace:
    return SimpleNamespace(message=SimpleNamespace(tp=("t", partition), topic="t", partition=partition, offset=7))


class Recorder:
    def __init__(self) -> None:
        self.ran: list[object] = []
        self.acked: list[object] = []
        self.requeued: list[object] = []

    def run(self, item: object):
        async def job() -> None:
            self.ran.append(item)

        return job

    async def ack(self, item: object) -> None:
        self.acked.append(item)

    async def requeue(self, item: object) -> None:
        self.requeued.append(item)


async def test_a_due_event_runs_and_one_due_later_than_the_hold_is_published_again():
    seen, now = Recorder(), 1000.0
    queue = DueQueue(requeue=seen.requeue, clock=lambda: now, hold_at_most=0.01)
    due, later = event(), event()
    await queue.put(due, now, seen.run(due), seen.ack)
    await queue.put(later, now + 3600, seen.run(later), seen.ack)
    await queue.join()
    assert seen.ran == [due] and seen.requeued == [later] and seen.acked == [later] and queue.requeued == 1


async def test_a_stopping_worker_publishes_at_once_and_a_revoked_partition_is_left_alone():
    seen = Recorder()
    stopping = DueQueue(requeue=seen.requeue, stopping=lambda: True)
    held = event()
    await stopping.put(held, 1e12, seen.run(held), seen.ack)
    await stopping.join()
    assert seen.requeued == [held] and seen.acked == [held] and seen.ran == []
    revoked = DueQueue(requeue=seen.requeue, assigned=lambda tp: False)
    gone = event(3)
    await revoked.put(gone, 0.0, seen.run(gone), seen.ack)
    await revoked.join()
    assert gone not in seen.ran and gone not in seen.acked and gone not in seen.requeued  # its new owner has it


async def test_a_failed_requeue_leaves_the_event_unacknowledged():
    seen = Recorder()

    async def broken(item: object) -> None:
        raise ConnectionError("broker down")

    queue = DueQueue(requeue=broken, stopping=lambda: True)
    held = event()
    await queue.put(held, 1e12, seen.run(held), seen.ack)
    await queue.join()
    assert seen.acked == [] and queue.requeued == 0
