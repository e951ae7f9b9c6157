"""Reading a source topic from the broker: every concrete channel of its address template.

A source such as ``/clicks/{page}`` lives on channels ``clicks.home``, ``clicks.pricing``...;
a derived topic subscribes to the glob pattern ``clicks.*`` and reads the address parameters
back out of each message's channel.
"""

from __future__ import annotations

import re
import string
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from ..topics import Topic

_GLOB_SPECIAL = re.compile(r"([*?\[\]])")
#: Channels a reader remembers the parameters of.
DECISIONS = 10_000


def _channel_regex(template: str) -> re.Pattern[str]:
    pattern = []
    for literal, name, _, _ in string.Formatter().parse(template):
        pattern.append(re.escape(literal))
        if name:
            pattern.append(f"(?P<{name}>.+?)")
    return re.compile("^" + "".join(pattern) + "$", re.DOTALL)


def _fixed_length(template: str) -> int:
    return sum(len(literal) for literal, _, _, _ in string.Formatter().parse(template))


def channel_pattern(topic: Topic) -> str:
    """The glob pattern matching every channel of ``topic`` (``clicks.{page}`` -> ``clicks.*``)."""
    assert topic.channel is not None
    parts = []
    for literal, name, _, _ in string.Formatter().parse(topic.channel):
        parts.append(_GLOB_SPECIAL.sub(r"[\1]", literal))
        if name:
            parts.append("*")
    return "".join(parts)


class ChannelReader:
    """Reads the address parameters of ``topic`` out of one of its concrete channels.

    A pattern can match channels of other topics too: ``clicks.*`` matches ``clicks.home`` and
    the derived ``clicks.home.per-second``. A channel that also fits a topic with a more
    specific template (more fixed characters) in ``others`` is that topic's, and is skipped.
    """

    def __init__(self, topic: Topic, others: Iterable[Topic] = ()) -> None:
        assert topic.channel is not None
        self.topic = topic
        self._regex = _channel_regex(topic.channel)
        own = _fixed_length(topic.channel)
        self._others = [
            _channel_regex(other.channel)
            for other in others
            if other is not topic and other.channel and _fixed_length(other.channel) > own
        ]
        #: The recent channels' parameters and address (None: not this topic's), bounded.
        self._known: OrderedDict[str, tuple[dict[str, Any], str] | None] = OrderedDict()

    def read(self, channel: str) -> tuple[dict[str, Any], str] | None:
        """The converted parameters and the concrete address of ``channel``, or None when the
        channel is not one of the topic's. Remembered for the most recent channels, since a
        topic's channels come back again and again.
        """
        try:
            return self._known[channel]
        except KeyError:
            pass
        params = self.params(channel)
        found = (params, self.topic.address_for(params)) if params is not None else None
        self._known[channel] = found
        if len(self._known) > DECISIONS:
            self._known.popitem(last=False)
        return found

    def params(self, channel: str) -> dict[str, Any] | None:
        """The converted parameters, or None when the channel is not one of the topic's."""
        found = self._regex.match(channel)
        if found is None or any(other.match(channel) for other in self._others):
            return None
        try:
            return {
                name: self.topic.convertors[name].convert(value)
                for name, value in found.groupdict().items()
            }
        except (ValueError, KeyError):
            return None
