"""Every topic, named once. Names get ``TOPIC_PREFIX`` in front.

External topics (written by the backend) carry plain JSON and are consumed as raw
bytes, then decoded by ``models.records``. Internal topics carry our records.
All topics keyed by cafe id share the partition count of ``deadline-passed``,
so the notification table is co-partitioned with both its sources.
"""

from __future__ import annotations

from models.records import DeadLetter, DigestRetry
from streams.app import app, settings
from streams.kafka_admin import TopicSpec

__all__ = ["dead_letters_topic", "deadline_passed_topic", "digest_retries_topic", "topic_specs"]

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


def topic_specs() -> list[TopicSpec]:
    """Every topic the worker uses, table changelogs included, as created at start-up."""
    n = settings.topic_partitions
    specs = [
        TopicSpec(deadline_passed_topic.get_topic_name(), n),
        TopicSpec(digest_retries_topic.get_topic_name(), n),
        TopicSpec(dead_letters_topic.get_topic_name(), n, strict=False),
    ]
    specs += [TopicSpec(t.changelog_topic.get_topic_name(), n, compacted=True) for t in app.tables.values()]
    return specs
