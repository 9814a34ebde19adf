"""Notification metrics the alert rules read: digests retrying (this worker's partitions only), the token."""

from __future__ import annotations

from types import SimpleNamespace

from aiokafka.partitioner import DefaultPartitioner
from faust.types import TP

from agents.notifications.delivery import DeliveryState, DeliveryStatus
from agents.notifications.metrics import held_states, notification_metrics, retrying_digests


def partition_of(cafe: str) -> int:
    """Where the producers' default partitioner puts a cafe's events (8 partitions)."""
    return DefaultPartitioner()(cafe.encode(), list(range(8)), list(range(8)))


def state(status: DeliveryStatus, first: float | None, updated: float = 0.0) -> DeliveryState:
    return DeliveryState(status, attempts=2, updated_at=updated, first_attempt_at=first)


def test_retrying_counts_the_waiting_digests_and_the_age_of_the_oldest():
    states = [
        state(DeliveryStatus.RETRYING, first=1000.0),
        state(DeliveryStatus.RETRYING, first=None, updated=1500.0),  # an old record: its last update
        state(DeliveryStatus.SENT, first=10.0),
        state(DeliveryStatus.FAILED, first=10.0),
    ]
    assert retrying_digests(states, now=4600.0) == (2, 3600.0)
    assert retrying_digests([], now=1.0) == (0, 0.0)


def fake_notifier(table: dict, assigned: set) -> SimpleNamespace:
    consumer = SimpleNamespace(assignment=lambda: assigned)
    table_obj = SimpleNamespace(items=table.items, partitions=8, app=SimpleNamespace(consumer=consumer))
    topic = SimpleNamespace(get_topic_name=lambda: "p.deadline-passed")
    return SimpleNamespace(table=table_obj, rekey=topic)


def test_only_the_cafes_of_this_workers_active_partitions_count():
    cafes = [str(c) for c in range(1, 40)]
    retrying = state(DeliveryStatus.RETRYING, first=1.0).to_dict()
    table = {cafe: {"2026-11-25": retrying} for cafe in cafes}
    mine = {0, 3}
    # Standby copies come as changelog partitions; only the source topic's partitions are this worker's.
    assigned = {TP("p.deadline-passed", p) for p in mine} | {TP("p-digest-deliveries-changelog", 5)}
    held = list(held_states(fake_notifier(table, assigned)))
    assert len(held) == sum(partition_of(cafe) in mine for cafe in cafes) > 0


def test_the_token_rejected_gauge_follows_the_client():
    notifier = fake_notifier({}, set())
    notifier.counts, notifier.dead_letters = {}, SimpleNamespace(count=0)

    def gauge(telegram) -> float:
        capability = SimpleNamespace(notifier=notifier, telegram=telegram, budget=None)
        families = {f.name: f for f in notification_metrics(capability)}
        return families["lunch_telegram_token_rejected"].samples[0].value

    assert gauge(None) == 0  # no token at all: lunch_configuration_missing says so
    assert gauge(SimpleNamespace(unauthorized=False, responses={})) == 0
    assert gauge(SimpleNamespace(unauthorized=True, responses={"401": 1})) == 1
