"""Every topic, named once. Names get ``TOPIC_PREFIX`` in front.

External topics (written by the backend) carry plain JSON and are consumed as raw
bytes, then decoded by ``models.records``. Internal topics carry our records.
All topics keyed by cafe id share the partition count of ``deadline-passed``,
so the notification table is co-partitioned with both its sources. The batch
planner's and the batch counter's topics have one partition each: one agent
instance owns all batches (and their tables), while the per-user requests fan
out over every partition and worker.
"""

from __future__ import annotations

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

deadline_passed_topic = app.topic(
    settings.topic("deadline-passed"),
    key_serializer="raw",
    value_serializer="raw",
    partitions=settings.topic_partitions,
    internal=True,  # declared (created if missing) with our partition count
)

digest_retries_topic = app.topic(
    settings.topic("digest-retries"),
    key_type=str,
    value_type=DigestRetry,
    partitions=settings.topic_partitions,
    internal=True,
)

dead_letters_topic = app.topic(
    settings.topic("dead-letters"),
    key_type=str,
    value_type=DeadLetter,
    partitions=settings.topic_partitions,
    internal=True,
)


daily_tasks_topic = app.topic(
    settings.topic("daily-tasks"),
    key_serializer="raw",
    value_serializer="raw",
    partitions=settings.topic_partitions,
    internal=True,
)

batch_triggers_topic = app.topic(
    settings.topic("recommendation-triggers"),
    key_type=str,
    value_type=BatchTrigger,
    partitions=1,
    internal=True,
)

recommendation_requests_topic = app.topic(
    settings.topic("recommendation-requests"),
    key_type=str,
    value_type=RecommendationRequest,
    partitions=settings.topic_partitions,
    internal=True,
)

batch_progress_topic = app.topic(
    settings.topic("recommendation-batch-progress"),
    key_type=str,
    value_type=BatchProgress,
    partitions=1,
    internal=True,
)


def topic_specs() -> list[TopicSpec]:
    """Every topic the worker uses, table changelogs included, as created at start-up."""
    n = settings.topic_partitions
    specs = [
        TopicSpec(deadline_passed_topic.get_topic_name(), n),
        TopicSpec(digest_retries_topic.get_topic_name(), n),
        TopicSpec(dead_letters_topic.get_topic_name(), n, strict=False),
        TopicSpec(daily_tasks_topic.get_topic_name(), n, strict=False),
        TopicSpec(batch_triggers_topic.get_topic_name(), 1),
        TopicSpec(recommendation_requests_topic.get_topic_name(), n, strict=False),
        TopicSpec(batch_progress_topic.get_topic_name(), 1),
    ]
    specs += [
        TopicSpec(t.changelog_topic.get_topic_name(), t.partitions or n, compacted=True) for t in app.tables.values()
    ]
    return specs
