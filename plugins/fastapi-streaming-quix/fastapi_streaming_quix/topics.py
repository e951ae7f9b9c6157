"""Quix Streams' topic manager, made to work on brokers that do not report a topic's retention.

Quix Streams derives the configuration of a window's changelog topic (and of a ``group_by``'s
repartition topic) from its source topics' ``retention.ms`` and ``retention.bytes``, as the
broker reports them. Kafka always reports both; tansu reports neither, and Quix Streams 3.28
fails with ``KeyError: 'retention.ms'`` the moment a window registers its state store. Here a
setting the broker leaves out is read as Kafka's default for a topic created without it
(unlimited size, and time: ``-1``), which is what such a broker does: it keeps everything.
"""

from __future__ import annotations

from quixstreams.models.topics import Topic, TopicConfig, TopicManager

#: What a topic keeps when its broker does not say: everything (as tansu does).
UNREPORTED_RETENTION = {"retention.ms": "-1", "retention.bytes": "-1"}


class RetentionDefaultingTopicManager(TopicManager):
    """A :class:`TopicManager` that fills in the retention a broker does not report."""

    def _configure_topic(self, topic: Topic, broker_topic: Topic) -> Topic:
        configured: Topic = super()._configure_topic(topic, broker_topic)
        config = configured.broker_config
        extra = {**UNREPORTED_RETENTION, **config.extra_config}
        configured.broker_config = TopicConfig(
            num_partitions=config.num_partitions,
            replication_factor=config.replication_factor,
            extra_config=extra,
        )
        return configured
