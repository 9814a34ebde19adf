"""Every topic, declared once with its spec. Names get ``TOPIC_PREFIX`` in front.

Every topic is consumed as raw bytes (keys too) and decoded by ``models.records``'
total decoders: internal topics are input like any other (a record written there by
anyone else is checked, not trusted). Internal topics carry our records, JSON.
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


#: Bytes in, bytes out: records sent to these topics are written as their JSON; what is read is decoded by the agent.
RAW = {"key_serializer": "raw", "value_serializer": "raw"}

deadline_passed_topic = _declare("deadline-passed", **RAW)
digest_retries_topic = _declare("digest-retries", **RAW)
dead_letters_topic = _declare("dead-letters", strict=False, **RAW)
daily_tasks_topic = _declare("daily-tasks", strict=False, **RAW)
batch_triggers_topic = _declare("recommendation-triggers", partitions=1, **RAW)
recommendation_requests_topic = _declare("recommendation-requests", strict=False, **RAW)
batch_progress_topic = _declare("recommendation-batch-progress", partitions=1, **RAW)


def topic_specs() -> list[TopicSpec]:
    """Every topic the worker uses, table changelogs included, as created at start-up."""
    tables = [
        TopicSpec(t.changelog_topic.get_topic_name(), t.partitions or settings.topic_partitions, compacted=True)
        for t in app.tables.values()
    ]
    return [*_SPECS, *tables]
