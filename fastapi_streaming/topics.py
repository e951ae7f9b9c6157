"""Topics: addresses with parameters, their modes, and how they map onto broker channels.

A topic is to a Streaming API what a path operation is to a REST API. Its address template
(``/stocks/{symbol}``, ``/rooms/{room_id:int}``) uses Starlette's path syntax and convertors,
so a FastAPI user already knows it.
"""

from __future__ import annotations

import enum
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import TypeAdapter
from starlette.convertors import Convertor, PathConvertor
from starlette.routing import compile_path

from .dependencies import HandlerPlan


class Mode(str, enum.Enum):
    """What a client does with a topic: receive its events, or send events into it."""

    SUBSCRIBE = "subscribe"
    PUBLISH = "publish"


class OverflowPolicy(str, enum.Enum):
    """What happens when a client falls so far behind that its queue is full."""

    #: Close the client's connection with a reason that says it was too slow (the default:
    #: a client never silently misses events).
    DISCONNECT = "disconnect"
    #: Drop the oldest queued event to make room for the newest, and count it.
    DROP_OLDEST = "drop_oldest"
    #: Keep only the latest event of each topic (conflation, for prices and gauges).
    LATEST = "latest"


class Derived(Protocol):
    """What computes a derived topic's events from other topics (see ``processing/``)."""

    @property
    def sources(self) -> tuple[str, ...]:
        """The address templates of the topics it reads."""
        ...

    def describe(self) -> dict[str, Any]:
        """How the AsyncAPI document describes it."""
        ...

    def under(self, prefix: str) -> Derived:
        """The same, declared on a router with ``prefix`` (its sources move along)."""
        ...


_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


@dataclass
class OperationReply:
    """What a publish operation answers each request with (AsyncAPI 3 request/reply).

    The publish handler's return value is the reply: it goes back to the client that sent the
    request (correlated by the request's id on the multiplexed WebSocket) and, when ``address``
    is a runtime expression such as ``$message.payload#/replyTo``, to the topic whose address
    the request names there. The request itself goes to the broker as any published event.
    """

    payload: Any
    adapter: TypeAdapter[Any]
    #: Where the request names the reply's topic: ``$message.payload#/...`` or
    #: ``$message.header#/...``; None sends the reply to the requester only.
    address: str | None = None
    #: The document channel the reply is described on, when it is another topic's.
    channel: str | None = None


@dataclass
class OperationPart:
    """One of several operations of an AsyncAPI document that share a topic's mode.

    A document may describe one socket with several ``receive`` operations told apart by
    their messages (kraken's ``ping``, ``subscribe``, ``unsubscribe``, each with its own
    reply). The topic's mode accepts all their messages; each part keeps its name, messages,
    security and reply for the document, and ``accepts`` tells which part a request is for,
    so that the right reply is checked.
    """

    key: str
    #: The keys of the part's messages among the operation's.
    messages: tuple[str, ...]
    accepts: Callable[[Any], bool] | None = None
    #: The document channel the part is on, when it is not the topic's own.
    channel: str | None = None
    summary: str | None = None
    description: str | None = None
    scopes: tuple[str, ...] = ()
    security: tuple[str, ...] | None = None
    reply: OperationReply | None = None


@dataclass
class Operation:
    """One mode of a topic: the handler that runs for it and the scopes it requires."""

    mode: Mode
    plan: HandlerPlan | None
    #: Validates what this operation receives: a client's event (publish) or a broker's (subscribe).
    payload_adapter: TypeAdapter[Any]
    scopes: tuple[str, ...] = ()
    summary: str | None = None
    description: str | None = None
    #: The type ``payload_adapter`` validates, kept so the AsyncAPI document can describe it.
    payload: Any = Any
    #: Tags of the operation in the AsyncAPI document (from the operation and its routers).
    tags: tuple[str, ...] = ()
    #: Marked deprecated in the AsyncAPI document; clients may still use it.
    deprecated: bool = False
    #: False leaves the operation out of the AsyncAPI document; clients may still use it.
    include_in_schema: bool = True
    #: The plan of clients on this operation: a ``fastapi_streaming.limits.Plan`` or a plan
    #: chooser (this layer does not import them); None uses the API's.
    limit: Any = None
    #: The operation's name in the AsyncAPI document it came from (``operationId``).
    key: str | None = None
    #: The security schemes that grant access to this operation, by name; None: any of the
    #: API's schemes (what an operation declared in code gets).
    security: tuple[str, ...] | None = None
    #: The reply of a request/reply publish operation.
    reply: OperationReply | None = None
    #: The document's operations this mode stands for, when there are several.
    parts: list[OperationPart] = field(default_factory=list)

    def reply_for(self, request: Any) -> OperationReply | None:
        """The reply of the part ``request`` is for (the operation's own without parts)."""
        for part in self.parts:
            if part.accepts is not None and part.accepts(request):
                return part.reply
        return self.reply

    @property
    def handler(self) -> Callable[..., Any] | None:
        return self.plan.call if self.plan is not None else None


@dataclass
class Topic:
    """A topic address template with its subscribe and/or publish operation."""

    address: str
    payload: Any = Any
    channel: str | None = None
    name: str | None = None
    description: str | None = None
    overflow: OverflowPolicy | None = None
    max_queue: int | None = None
    subscribe: Operation | None = None
    publish: Operation | None = None
    #: Set on a derived topic: its events are computed from other topics, once per deployment.
    derivation: Derived | None = None
    #: Set on a topic that can give a new client its current rows first (a table topic): a
    #: ``fastapi_streaming.snapshots.SnapshotSource`` (this layer does not import it).
    snapshots: Any = None
    #: What a document says of each address parameter beyond its type (``description``,
    #: ``enum``, ``default``, ``examples``), kept for the AsyncAPI document.
    parameter_docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Other channels of a document on this same address (by key: their description), which
    #: the document of this API describes again.
    channel_docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    regex: re.Pattern[str] = field(init=False, repr=False)
    convertors: dict[str, Convertor[Any]] = field(init=False, repr=False)
    payload_adapter: TypeAdapter[Any] = field(init=False, repr=False)
    channel_is_explicit: bool = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.address.startswith("/"):
            raise ValueError(f"Topic address {self.address!r} must start with '/'.")
        self.regex, _, self.convertors = compile_path(self.address)
        self.channel_is_explicit = self.channel is not None
        self.set_channel(self.channel or default_channel(self.address))
        self.payload_adapter = TypeAdapter(self.payload)

    def set_channel(self, template: str) -> None:
        """Map the topic onto a broker channel template such as ``market.quotes.{symbol}``."""
        unknown = channel_fields(template) - set(self.convertors)
        if unknown:
            raise ValueError(
                f"Channel template {template!r} of topic {self.address!r} uses "
                f"{sorted(unknown)}, which are not parameters of the address."
            )
        self.channel_is_explicit = self.channel_is_explicit or template != default_channel(
            self.address
        )
        self.channel = template

    @property
    def parameters(self) -> tuple[str, ...]:
        """The names of the address parameters, in order."""
        return tuple(self.convertors)

    @property
    def modes(self) -> tuple[Mode, ...]:
        return tuple(op.mode for op in (self.subscribe, self.publish) if op is not None)

    def operation(self, mode: Mode) -> Operation | None:
        return self.subscribe if mode is Mode.SUBSCRIBE else self.publish

    def match(self, address: str) -> dict[str, Any] | None:
        """Return the converted parameters if ``address`` is an instance of this topic."""
        if _CONTROL_CHARACTERS.search(address):
            return None
        found = self.regex.match(address)
        if found is None:
            return None
        try:
            return {
                name: self.convertors[name].convert(value)
                for name, value in found.groupdict().items()
            }
        except Exception:  # a value its convertor cannot take (a 5,000-digit int): no such topic
            return None

    def channel_for(self, params: Mapping[str, Any]) -> str:
        """The broker channel that carries the events of one concrete address."""
        assert self.channel is not None
        return self.channel.format_map(
            {name: self.convertors[name].to_string(value) for name, value in params.items()}
        )

    def address_for(self, params: Mapping[str, Any]) -> str:
        """The concrete address with ``params`` filled in (the inverse of :meth:`match`)."""
        address = self.address
        for name, convertor in self.convertors.items():
            address = re.sub(
                r"{" + re.escape(name) + r"(:[^}]*)?}", convertor.to_string(params[name]), address
            )
        return address


def default_channel(address: str) -> str:
    """Derive a channel template from an address: ``/stocks/{symbol}`` -> ``stocks.{symbol}``.

    Dots are the common separator of Kafka topics, NATS subjects, AMQP routing keys and Redis
    channel conventions; MQTT plugins map them onto topic levels.
    """
    template = re.sub(r"{([a-zA-Z_][a-zA-Z0-9_]*)(:[^}]*)?}", r"{\1}", address)
    return template.strip("/").replace("/", ".") or "root"


def channel_fields(template: str) -> set[str]:
    """The parameter names a channel template refers to."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def specificity(topic: Topic) -> tuple[int, int, int]:
    """How :meth:`TopicRegistry.resolve` ranks topics that could all match one address.

    Fewer ``path`` parameters first (they swallow slashes, so they match the most), then
    fewer parameters (a fixed address has none), then more literal characters
    (``/rooms/{id}/info`` before ``/rooms/{id}/{part}``).
    """
    literal = re.sub(r"{[^}]*}", "", topic.address)
    paths = sum(isinstance(convertor, PathConvertor) for convertor in topic.convertors.values())
    return (paths, len(topic.convertors), -len(literal))


class TopicRegistry:
    """The topics of one :class:`~fastapi_streaming.StreamingAPI`, looked up by concrete address."""

    def __init__(self) -> None:
        self._topics: dict[str, Topic] = {}
        #: The topics in the order :meth:`resolve` tries them: most specific first.
        self._by_specificity: list[Topic] = []
        #: Bumped whenever a topic changes, so derived documents know when to rebuild.
        self.revision = 0

    def __iter__(self) -> Any:
        return iter(self._topics.values())

    def __len__(self) -> int:
        return len(self._topics)

    def get(self, template: str) -> Topic | None:
        return self._topics.get(template)

    def add(self, topic: Topic) -> Topic:
        self._topics[topic.address] = topic
        # sorted() is stable: topics of equal rank keep their declaration order.
        self._by_specificity = sorted(self._topics.values(), key=specificity)
        self.revision += 1
        return topic

    def touch(self) -> None:
        self.revision += 1

    def resolve(self, address: str) -> tuple[Topic, dict[str, Any]] | None:
        """Find the topic a concrete address belongs to, with its converted parameters.

        A fixed address beats a template, and a template with fewer parameters beats one with
        more, whatever the order they were declared in: ``/rpc_queue`` reaches the topic
        ``/rpc_queue`` even when ``/{queue}`` was declared first (see :func:`specificity`).
        """
        for topic in self._by_specificity:
            params = topic.match(address)
            if params is not None:
                return topic, params
        return None
