"""The glob-pattern bookkeeping of backends that match channels themselves."""

from __future__ import annotations

import pytest
from broadcaster import Event as BrokerMessage

from fastapi_streaming.brokers.patterns import PatternListeners


def test_the_first_listener_and_the_last_one_are_told() -> None:
    listeners = PatternListeners()
    first: list[BrokerMessage] = []
    second: list[BrokerMessage] = []
    assert listeners.add("clicks.*", first.append)  # subscribe it on the broker
    assert not listeners.add("clicks.*", second.append)
    assert list(listeners) == ["clicks.*"]
    assert not listeners.remove("clicks.*", first.append)
    assert listeners.remove("clicks.*", second.append)  # unsubscribe it
    assert not listeners and list(listeners) == []
    assert not listeners.remove("clicks.*", second.append)  # nothing to unsubscribe twice


def test_a_message_reaches_every_pattern_its_channel_matches() -> None:
    listeners = PatternListeners()
    clicks: list[BrokerMessage] = []
    everything: list[BrokerMessage] = []
    listeners.add("clicks.*", clicks.append)
    listeners.add("*", everything.append)
    listeners.deliver("clicks.a.b", "x")  # a glob's * crosses dots
    listeners.deliver("views.home", "y")
    assert [(m.channel, m.message) for m in clicks] == [("clicks.a.b", "x")]
    assert [m.channel for m in everything] == ["clicks.a.b", "views.home"]
    assert listeners.matching("clicksx.home") == [everything.append]


def test_a_failing_listener_does_not_keep_the_message_from_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    listeners = PatternListeners()
    got: list[BrokerMessage] = []

    def fails(message: BrokerMessage) -> None:
        raise RuntimeError("broken")

    listeners.add("clicks.*", fails)
    listeners.add("clicks.*", got.append)
    listeners.deliver("clicks.home", "x")
    assert [m.message for m in got] == ["x"]
    assert "A pattern listener failed on channel 'clicks.home'" in caplog.text
