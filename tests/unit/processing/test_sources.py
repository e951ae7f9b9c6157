"""Reading source topics from channel patterns."""

from __future__ import annotations

from fastapi_streaming.processing.sources import ChannelReader, channel_pattern
from fastapi_streaming.topics import Topic


def test_a_source_pattern_covers_every_channel_and_escapes_glob_characters() -> None:
    assert channel_pattern(Topic("/clicks/{page}")) == "clicks.*"
    assert channel_pattern(Topic("/a", channel="odd[1]?*")) == "odd[[]1[]][?][*]"
    rooms = Topic("/rooms/{room:int}/{kind}", channel="rooms-{room}-{kind}")
    assert channel_pattern(rooms) == "rooms-*-*"


def test_parameters_are_read_back_and_converted_and_other_topics_channels_skipped() -> None:
    clicks, derived = Topic("/clicks/{page}"), Topic("/clicks/{page}/per-second")
    reader = ChannelReader(clicks, [clicks, derived])
    assert reader.read("clicks.home") == ({"page": "home"}, "/clicks/home")
    assert reader.read("clicks.home.per-second") is None  # the derived topic's own channel
    assert reader.read("other.home") is None
    rooms = Topic("/rooms/{room:int}")
    assert ChannelReader(rooms).read("rooms.12") == ({"room": 12}, "/rooms/12")
    assert ChannelReader(rooms).read("rooms.twelve") is None  # not an int: not this topic's
