"""Who listens to which glob pattern, for a backend that matches channels to patterns itself.

Derived topics read every channel of their sources through
:class:`~fastapi_streaming.brokers.extensions.PatternSubscription`. A broker whose own patterns
differ from globs (an AMQP binding key, an MQTT topic filter) subscribes something broader and
leaves the exact match to this class; ``memory://`` has no broker to ask at all.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable, Iterator

from broadcaster import Event as BrokerMessage

logger = logging.getLogger("fastapi_streaming.broker")

Deliver = Callable[[BrokerMessage], None]


class PatternListeners:
    """The listeners of each glob pattern, in the order they came."""

    def __init__(self) -> None:
        self._listeners: dict[str, list[Deliver]] = {}

    def __bool__(self) -> bool:
        return bool(self._listeners)

    def __iter__(self) -> Iterator[str]:
        """The patterns someone listens to."""
        return iter(tuple(self._listeners))

    def add(self, pattern: str, deliver: Deliver) -> bool:
        """Listen; True if nobody listened to ``pattern`` before (subscribe it on the broker)."""
        listeners = self._listeners.setdefault(pattern, [])
        listeners.append(deliver)
        return len(listeners) == 1

    def remove(self, pattern: str, deliver: Deliver) -> bool:
        """Stop listening; True if nobody listens to ``pattern`` any more (unsubscribe it)."""
        listeners = self._listeners.get(pattern)
        if listeners is None:
            return False
        if deliver in listeners:
            listeners.remove(deliver)
        if listeners:
            return False
        del self._listeners[pattern]
        return True

    def matching(self, channel: str) -> list[Deliver]:
        """The listeners of every pattern ``channel`` matches."""
        return [
            deliver
            for pattern, listeners in tuple(self._listeners.items())
            if fnmatch.fnmatchcase(channel, pattern)
            for deliver in tuple(listeners)
        ]

    def deliver(self, channel: str, message: str) -> None:
        """Hand a message to the listeners of every pattern its channel matches; one that
        fails is logged and does not keep the message from the others."""
        for deliver in self.matching(channel):
            try:
                deliver(BrokerMessage(channel=channel, message=message))
            except Exception:
                logger.exception("A pattern listener failed on channel %r", channel)
