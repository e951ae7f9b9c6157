"""Who computes a derived topic on Kafka: the assignor of its consumer group.

Kafka's group protocol lets the group's leader decide which member reads which partition. For
a derived topic that decision is "one member reads them all" (:func:`one_owner`): state is kept
per key, and a key's events must all reach the same process. With key partitions
(``partitions=N``) each key partition has a group of its own, whose assignor gives only the
topics of that partition, to one member: the ``k``-th of the members ordered by their process
token (carried in the members' metadata, so that every group orders the processes alike), which
spreads the partitions over the processes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)


@dataclass(frozen=True)
class Assignment:
    """Which part of a derived topic a group is about: all of it, or one key partition."""

    #: This process, as the other members' assignors order it.
    token: str = ""
    partition: int | None = None
    partitions: int = 1
    #: The key partition of a source topic (None: not a source's).
    partition_of: Callable[[str], int | None] = field(default=lambda topic: 0)

    def name(self, channel: str) -> str:
        if self.partition is None:
            return channel
        return f"{channel}#partition-{self.partition}-of-{self.partitions}"

    def wants(self, topic: str) -> bool:
        return self.partition is None or self.partition_of(topic) == self.partition


def one_owner(assignment: Assignment) -> type[AbstractPartitionAssignor]:
    """An assignor that gives the topics ``assignment`` wants to one member.

    A class per consumer, so that its memory of the owner is that consumer's. Without key
    partitions the owner stays while it is a member (a joining process takes nothing over).
    """

    class OneOwner(AbstractPartitionAssignor):  # type: ignore[misc]
        name = "fastapi-streaming-one-owner"
        version = 0
        owner: str | None = None

        @classmethod
        def assign(
            cls, cluster: ClusterMetadata, members: Mapping[str, ConsumerProtocolMemberMetadata]
        ) -> dict[str, ConsumerProtocolMemberAssignment]:
            if assignment.partition is None:
                owner = cls.owner if cls.owner in members else min(members)
            else:
                ordered = sorted(members, key=lambda m: (bytes(members[m].user_data or b""), m))
                owner = ordered[assignment.partition % len(ordered)]
            cls.owner = owner
            topics: set[str] = set()
            for metadata in members.values():
                topics.update(t for t in metadata.subscription if assignment.wants(t))
            partitions = sorted(
                (topic, sorted(cluster.partitions_for_topic(topic) or ())) for topic in topics
            )
            return {
                member: ConsumerProtocolMemberAssignment(
                    cls.version, partitions if member == owner else [], b""
                )
                for member in members
            }

        @classmethod
        def metadata(cls, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
            return ConsumerProtocolMemberMetadata(
                cls.version, list(topics), assignment.token.encode()
            )

        @classmethod
        def on_assignment(cls, assignment: ConsumerProtocolMemberAssignment) -> None:
            pass

    return OneOwner
