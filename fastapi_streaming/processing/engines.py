"""The boundary between derived topics as declared and the engine that computes them.

A :class:`ProcessingEngine` receives every derived topic of an API as a :class:`DerivedTopic`
(the topic, its sources, and the :class:`~.declaration.Derivation`: window, aggregate, time,
key, lateness, emit, handler) and computes them against the broker while the API runs, once per
deployment. The embedded engine (:mod:`.runner`) is the default implementation; another one,
on an existing stream processor, comes as a plugin package through the
``fastapi_streaming_processing_engines`` hook (:mod:`.hookspecs`), and an app picks it by name
(``StreamingAPI(processing_engine="quix")``).

Nothing here runs anything: it is the contract both sides agree on, small on purpose, so an
engine never needs the ``StreamingAPI`` object, and the API never needs to know the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..runtime import StreamingRuntime
from ..topics import Topic, TopicRegistry
from .declaration import Derivation

#: The engine an API uses unless told otherwise.
DEFAULT_ENGINE = "embedded"


class UnknownEngineError(ValueError):
    """No installed plugin provides a processing engine of that name."""


class UnsupportedDeclarationError(ValueError):
    """An engine cannot compute a derived topic as declared (it says what to change)."""


@dataclass(frozen=True)
class DerivedTopic:
    """One derived topic, as every engine receives it.

    ``topic`` gives the derived address, its parameters and broker channel; ``sources`` the
    topics it reads (in the order of ``derivation.sources``); ``key_names`` the names a window's
    key is made of (the derived topic's parameters, then the ``key=`` field when it is not one).
    """

    topic: Topic
    derivation: Derivation
    sources: tuple[Topic, ...]
    key_names: tuple[str, ...]

    @property
    def address(self) -> str:
        return self.topic.address


@dataclass(frozen=True)
class EngineContext:
    """What an engine is built from: the derived topics and the broker it computes on.

    ``runtime`` publishes and subscribes through the API's broker connection (an engine may
    use it, or talk to the broker at ``broker_url`` with a client of its own); ``topics`` is the
    whole registry, for engines that must tell a source's channels from other topics' ones.
    """

    derived: tuple[DerivedTopic, ...]
    topics: TopicRegistry
    runtime: StreamingRuntime
    broker_url: str


@runtime_checkable
class ProcessingEngine(Protocol):
    """Computes the derived topics of one running API, each once per deployment."""

    @property
    def owned(self) -> Collection[str]:
        """The derived topics (addresses) this process computes right now, wholly or in part."""
        ...

    async def start(self) -> None:
        """Begin computing; return once the engine runs (it may still be taking ownership)."""
        ...

    async def stop(self) -> None:
        """Stop computing and hand ownership over at once; leaves no task or client behind."""
        ...


#: Builds an engine for a running API.
EngineFactory = Callable[[EngineContext], ProcessingEngine]


def derived_topics(topics: TopicRegistry) -> tuple[DerivedTopic, ...]:
    """Every derived topic of ``topics``, with its sources found (or an error naming them)."""
    found = []
    for topic in topics:
        derivation = topic.derivation
        if derivation is None:
            continue
        assert isinstance(derivation, Derivation)
        sources = tuple(
            source_topic(topics, address, topic.address) for address in derivation.sources
        )
        found.append(DerivedTopic(topic, derivation, sources, key_names(topic, derivation)))
    return tuple(found)


def source_topic(topics: TopicRegistry, address: str, derived: str) -> Topic:
    """The topic a derived topic reads, or an error that says what to declare."""
    topic = topics.get(address)
    if topic is None:
        known = sorted(t.address for t in topics if t.address != derived)
        raise ValueError(
            f"Derived topic {derived!r} reads {address!r}, which is not a topic of this API. "
            f"Declare it (with @subscribe or @publish), or name one of {known}."
        )
    return topic


def key_names(topic: Topic, derivation: Derivation) -> tuple[str, ...]:
    """A window's key: the derived topic's parameters, then the ``key=`` field."""
    names = list(topic.parameters)
    if derivation.key and derivation.key not in names:
        names.append(derivation.key)
    return tuple(names)
