"""Every topic, declared once with its spec. Names get ``TOPIC_PREFIX`` in front.

External topics (written by the backend) carry plain JSON and are consumed as raw
bytes, then decoded by ``models.records``. Internal topics carry our records.
All topics keyed by cafe id share the partition count of ``deadline-passed``,
so the notification table is co-partitioned with both its sources. The batch
planner's and the batch counter's topics have one partition each: one agent
instance owns all batches (and their tables), while the per-user requests fan
out over every partition and worker.

:func:`topic_specs` lists what the worker creates at start (``kafka_admin``):
every topic declared here and every table's changelog, so a topic cannot be
declared without its spec.
"""

from __future__ import annotations

from typing import Any

import faust

from models.records import BatchProgress, BatchTrigger, DeadLetter, DigestRetry, RecommendationRequest
from streams.app import app, settings
from streams.kafka_admin import TopicSpec

__all__ = [
    "batch_progress_topic",
    "batch_triggers_topic",
    "daily_tasks_topic",
    "dead_letters_topic",
    "deadline_passed_topic",
    "digest_retries_topic",
    "recommendation_requests_topic",
    "topic_specs",
]

_SPECS: list[TopicSpec] = []


def _declare(name: str, *, partitions: int | None = None, strict: bool = True, **types: Any) -> faust.TopicT:
    """Declare topic ``name`` (``TOPIC_PARTITIONS`` partitions unless given) and record its spec.

    ``strict``: its partition count must match (it feeds or mirrors a co-partitioned table).
    """
    count = partitions or settings.topic_partitions
    topic = app.topic(settings.topic(name), partitions=count, internal=True, **types)
    _SPECS.append(TopicSpec(topic.get_topic_name(), count, strict=strict))
    return topic


deadline_passed_topic = _declare("deadline-passed", key_serializer="raw", value_serializer="raw")
digest_retries_topic = _declare("digest-retries", key_type=str, value_type=DigestRetry)
dead_letters_topic = _declare("dead-letters", strict=False, key_type=str, value_type=DeadLetter)
daily_tasks_topic = _declare("daily-tasks", strict=False, key_serializer="raw", value_serializer="raw")
batch_triggers_topic = _declare("recommendation-triggers", partitions=1, key_type=str, value_type=BatchTrigger)
recommendation_requests_topic = _declare(
    "recommendation-requests", strict=False, key_type=str, value_type=RecommendationRequest
)
batch_progress_topic = _declare("recommendation-batch-progress", partitions=1, key_type=str, value_type=BatchProgress)


def topic_specs() -> list[TopicSpec]:
    """Every topic the worker uses, table changelogs included, as created at start-up."""
    tables = [
        TopicSpec(t.changelog_topic.get_topic_name(), t.partitions or settings.topic_partitions, compacted=True)
        for t in app.tables.values()
    ]
    return [*_SPECS, *tables]
