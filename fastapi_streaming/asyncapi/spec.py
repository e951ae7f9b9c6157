"""The version-neutral description of a streaming API, built from its topics alone.

``describe_api`` reads a :class:`~fastapi_streaming.StreamingAPI` (its settings and its
:class:`~fastapi_streaming.topics.TopicRegistry`) and says what the API offers: servers, one
channel per topic, its messages and operations, and security. The generators of each AsyncAPI
version (:mod:`.v3`, :mod:`.v2`) only translate this description into their version's words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import TypeAdapter

from ..topics import Mode, Operation, OperationReply, Topic
from .names import channel_key
from .schemas import SchemaMode, parameter_schema, payload_schemas, resolve
from .security import security_schemes_of
from .validation import JsonSchemaPayload, json_schema_payload

if TYPE_CHECKING:
    from ..api import StreamingAPI

DEFAULT_BASE_URL = "http://localhost:8000"
CONTENT_TYPE = "application/json"


@dataclass
class Server:
    key: str
    protocol: str
    host: str
    pathname: str
    title: str
    description: str


@dataclass
class Parameter:
    name: str
    schema: dict[str, Any]
    description: str | None = None
    #: What a document said of the parameter besides its description (``enum``, ...).
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class Message:
    key: str
    payload: dict[str, Any]
    name: str | None = None
    title: str | None = None
    summary: str | None = None
    description: str | None = None
    examples: list[Any] = field(default_factory=list)
    content_type: str = CONTENT_TYPE
    #: Fields of a document's message written back as they were (``headers``, ...).
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReplySpec:
    #: The channel the reply is described on (its messages' home); the request's own if None.
    channel: str | None
    messages: list[str]
    address: str | None = None
    #: The messages, until they join their channel (see :func:`_place_replies`).
    found: list[Message] = field(default_factory=list)


@dataclass
class OperationSpec:
    key: str
    mode: Mode
    messages: list[str]
    summary: str | None = None
    description: str | None = None
    scopes: tuple[str, ...] = ()
    #: The schemes that grant access, by name; None: every scheme of the API.
    security: tuple[str, ...] | None = None
    reply: ReplySpec | None = None

    @property
    def action(self) -> str:
        """What the application does: it sends what clients subscribe to, receives the rest."""
        return "send" if self.mode is Mode.SUBSCRIBE else "receive"


@dataclass
class Channel:
    key: str
    address: str
    parameters: list[Parameter]
    messages: dict[str, Message]
    operations: list[OperationSpec]
    servers: list[str]
    description: str | None = None
    extension: dict[str, Any] = field(default_factory=dict)


@dataclass
class Info:
    title: str
    version: str
    description: str | None = None
    terms_of_service: str | None = None
    contact: dict[str, Any] | None = None
    license: dict[str, Any] | None = None
    tags: list[dict[str, Any]] | None = None
    external_docs: dict[str, Any] | None = None


@dataclass
class ApiSpec:
    info: Info
    servers: list[Server]
    channels: list[Channel]
    schemas: dict[str, dict[str, Any]]
    security_schemes: dict[str, dict[str, Any]]
    content_type: str = CONTENT_TYPE
    #: Every operation needs credentials, even those without scopes.
    require_auth: bool = False
    #: What every server requires, ``{scheme: [scopes]}``; said once on the servers instead
    #: of on every operation.
    server_security: dict[str, list[str]] | None = None


def describe_api(streaming: StreamingAPI, *, base_url: str | None = None) -> ApiSpec:
    """Describe ``streaming`` as clients at ``base_url`` (``http://host:port/root``) see it."""
    servers = _servers(streaming, base_url or DEFAULT_BASE_URL)
    has_websub = getattr(streaming, "websub", None) is not None
    topics = sorted(streaming.topics, key=lambda topic: topic.address)
    keys = _channel_keys(topics)
    payloads, schemas = _payloads(topics, keys)
    channels = [
        channel
        for topic in topics
        for channel in _channels(topic, keys[topic.address], payloads, schemas, has_websub)
    ]
    _place_replies(channels)
    scopes = list(
        dict.fromkeys(scope for ch in channels for op in ch.operations for scope in op.scopes)
    )
    # ``require_auth`` comes with the authorizers (``StreamingAPI(require_auth=True)``).
    require_auth = bool(getattr(getattr(streaming, "access", None), "require_auth", False))
    return ApiSpec(
        info=Info(
            title=streaming.title,
            version=streaming.version,
            description=streaming.description,
            terms_of_service=streaming.terms_of_service,
            contact=streaming.contact,
            license=streaming.license_info,
            tags=streaming.tags,
            external_docs=streaming.external_docs,
        ),
        servers=servers,
        channels=channels,
        schemas=dict(sorted(schemas.items())),
        security_schemes=security_schemes_of(
            streaming, bool(scopes) or require_auth, base_url or DEFAULT_BASE_URL, scopes
        ),
        require_auth=require_auth,
        server_security=getattr(streaming, "server_security", None),
    )


def _place_replies(channels: list[Channel]) -> None:
    """Put each reply's messages into the channel it is described on (another topic's)."""
    by_key = {channel.key: channel for channel in channels}
    for channel in channels:
        for operation in channel.operations:
            reply = operation.reply
            if reply is None or reply.channel is None or not reply.found:
                continue  # none, or already in its channel
            target = by_key.get(reply.channel)
            if target is None:
                reply.channel = None
                target = channel
            reply.messages = _add_messages(target.messages, reply.found, "reply")


# -- servers ---------------------------------------------------------------------------------


def _servers(streaming: StreamingAPI, base_url: str) -> list[Server]:
    """One server per transport: where a client connects, and with which protocol."""
    parts = urlsplit(base_url if "://" in base_url else f"http://{base_url}")
    secure = parts.scheme in ("https", "wss")
    http, ws = ("https", "wss") if secure else ("http", "ws")
    root = parts.path.rstrip("/") + streaming.prefix
    host = parts.netloc
    servers = [
        Server(
            "websocket",
            ws,
            host,
            root + "/ws",
            "WebSocket",
            "One topic per socket at `{address}` below this path (the server sends each event "
            "as a JSON text frame; on a publish topic the client sends JSON text frames), or "
            "many topics on one socket at this path with `subscribe`, `unsubscribe` and "
            "`publish` control messages.",
        ),
        Server(
            "sse",
            http,
            host,
            root + "/sse",
            "Server-Sent Events",
            "`GET` the topic's `{address}` below this path for one topic, or this path with "
            "`?topic=` repeated for many (each event is then named after its topic). "
            "`Last-Event-ID` resumes a stream.",
        ),
        Server(
            "http",
            http,
            host,
            root + "/publish",
            "HTTP publish",
            "`POST` an event as a JSON body to the topic's `{address}` below this path: "
            "202 with the event id, 422 for an invalid event, 413 for one too large.",
        ),
    ]
    if getattr(streaming, "websub", None) is not None:
        servers.append(
            Server(
                "websub",
                http,
                host,
                root + "/websub",
                "WebSub",
                "W3C WebSub: subscribe a callback at the hub (`POST hub` below this path, with "
                "`hub.mode`, `hub.topic`, `hub.callback`, `hub.secret`, `hub.lease_seconds`); "
                "events are then delivered to the callback.",
            )
        )
    return servers


def _channel_servers(topic: Topic, has_websub: bool) -> list[str]:
    servers = ["websocket"]
    if topic.subscribe is not None:
        servers.append("sse")
    if topic.publish is not None:
        servers.append("http")
    if topic.subscribe is not None and has_websub:
        servers.append("websub")
    return servers


# -- channels --------------------------------------------------------------------------------


def _channel_keys(topics: list[Topic]) -> dict[str, str]:
    keys: dict[str, str] = {}
    taken: set[str] = set()
    for topic in topics:
        key = topic.name or channel_key(topic.address)
        candidate, number = key, 2
        while candidate in taken:
            candidate, number = f"{key}_{number}", number + 1
        taken.add(candidate)
        keys[topic.address] = candidate
    return keys


def asyncapi_address(address: str) -> str:
    """The address without Starlette convertors: ``/rooms/{room:int}`` -> ``/rooms/{room}``."""
    return re.sub(r"{([A-Za-z_][A-Za-z0-9_]*):[^}]*}", r"{\1}", address)


def _message_payload(topic: Topic, operation: Operation) -> Any:
    """What the messages of one operation carry.

    Clients send a publish operation what its payload validates; they receive from a subscribe
    operation what its handler returns (or, without a definite return type, its payload). A
    payload taken from an AsyncAPI document stays the contract whatever the handler returns.
    """
    if operation.mode is Mode.SUBSCRIBE and operation.plan is not None:
        returned = _without_none(operation.plan.return_type)
        if returned is not Any and json_schema_payload(operation.payload) is None:
            return returned
    return operation.payload


def _without_none(annotation: Any) -> Any:
    args = getattr(annotation, "__args__", None)
    if args and type(None) in args:
        rest = [arg for arg in args if arg is not type(None)]
        return rest[0] if len(rest) == 1 else Any
    return annotation


#: The payloads of one API by (topic address, ``subscribe`` / ``publish`` / ``reply``).
Payloads = dict[tuple[str, str], tuple[dict[str, Any], JsonSchemaPayload | None]]


def _described(topic: Topic) -> list[tuple[str, Any, SchemaMode]]:
    """What each operation of ``topic`` (and a reply) carries, and how pydantic sees it."""
    found: list[tuple[str, Any, SchemaMode]] = []
    for operation in (topic.subscribe, topic.publish):
        if operation is None:
            continue
        schema_mode: SchemaMode = (
            "serialization" if operation.mode is Mode.SUBSCRIBE else "validation"
        )
        found.append((operation.mode.value, _message_payload(topic, operation), schema_mode))
        if operation.reply is not None:
            found.append(("reply", operation.reply.payload, "serialization"))
        for part in operation.parts:
            if part.reply is not None:
                found.append((f"reply {part.key}", part.reply.payload, "serialization"))
    return found


def _payloads(topics: list[Topic], keys: dict[str, str]) -> tuple[Payloads, dict[str, Any]]:
    """Every operation's payload schema, and the shared schemas, generated in one pass."""
    inputs: list[tuple[str, SchemaMode, TypeAdapter[Any]]] = []
    declared: dict[tuple[str, str], JsonSchemaPayload] = {}
    for topic in topics:
        for label, payload, schema_mode in _described(topic):
            marker = json_schema_payload(payload)
            if marker is not None:
                declared[(topic.address, label)] = marker
            else:
                inputs.append((f"{label} {topic.address}", schema_mode, TypeAdapter(payload)))
    generated, schemas = payload_schemas(inputs)
    result: Payloads = {}
    for topic in topics:
        for label, _, _ in _described(topic):
            found = declared.get((topic.address, label))
            if found is not None:
                for name, schema in found.components.items():
                    schemas.setdefault(name, schema)
                result[(topic.address, label)] = (found.schema, found)
            else:
                result[(topic.address, label)] = (generated[f"{label} {topic.address}"], None)
    return result, schemas


def _messages(
    channel: str,
    label: str,
    payload: dict[str, Any],
    declared: JsonSchemaPayload | None,
    schemas: dict[str, Any],
) -> list[Message]:
    """The messages of one operation: the document's, one per message, or one generated."""
    if declared is not None and declared.messages:
        return [
            message
            for alternative in declared.messages
            for message in _messages(channel, label, alternative.schema, alternative, schemas)
        ]
    if declared is not None and declared.message.get("key"):
        meta = declared.message
        return [
            Message(
                key=meta["key"],
                payload=payload,
                name=meta.get("name"),
                title=meta.get("title"),
                summary=meta.get("summary"),
                description=meta.get("description"),
                examples=list(meta.get("examples") or []),
                content_type=meta.get("contentType") or CONTENT_TYPE,
                fields=dict(meta.get("fields") or {}),
            )
        ]
    target = resolve(payload, schemas)
    ref = payload.get("$ref", "")
    key = ref.rsplit("/", 1)[-1] if ref else f"{channel}_{label}"
    examples = target.get("examples") if isinstance(target, dict) else None
    return [
        Message(
            key=key,
            payload=payload,
            name=key,
            title=target.get("title") if isinstance(target, dict) else None,
            description=target.get("description") if isinstance(target, dict) else None,
            examples=list(examples) if isinstance(examples, list) else [],
        )
    ]


def _add_messages(into: dict[str, Message], found: list[Message], label: str) -> list[str]:
    """Add messages to a channel; one key, one message (a clash gets the label appended)."""
    keys = []
    for message in found:
        same = into.get(message.key)
        if same is not None and same.payload != message.payload:
            message.key = f"{message.key}_{label}"
        into.setdefault(message.key, message)
        keys.append(message.key)
    return keys


def _channels(
    topic: Topic,
    key: str,
    payloads: Payloads,
    schemas: dict[str, Any],
    has_websub: bool,
) -> list[Channel]:
    """The topic's channel, and the other channels of its document on the same address."""
    homes: dict[str, dict[str, Message]] = {key: {}}
    for other in topic.channel_docs:
        homes.setdefault(other, {})
    operations: dict[str, list[OperationSpec]] = {home: [] for home in homes}
    for operation in (topic.subscribe, topic.publish):
        if operation is None:
            continue
        label = operation.mode.value
        payload, declared = payloads[(topic.address, label)]
        found = _messages(key, label, payload, declared, schemas)
        if not operation.parts:
            reply = _reply(topic, operation.reply, "reply", homes, key, payloads, schemas)
            operations[key].append(
                OperationSpec(
                    key=operation.key or f"{label}_{key}",
                    mode=operation.mode,
                    messages=_add_messages(homes[key], found, label),
                    summary=operation.summary,
                    description=operation.description,
                    scopes=operation.scopes,
                    security=operation.security,
                    reply=reply,
                )
            )
            continue
        by_key = {message.key: message for message in found}
        for part in operation.parts:
            home = part.channel if part.channel in homes else key
            assert home is not None
            mine = [by_key[name] for name in part.messages if name in by_key]
            label_of_reply = f"reply {part.key}"
            reply = _reply(topic, part.reply, label_of_reply, homes, home, payloads, schemas)
            operations[home].append(
                OperationSpec(
                    key=part.key or f"{label}_{key}",
                    mode=operation.mode,
                    messages=_add_messages(homes[home], mine, label),
                    summary=part.summary,
                    description=part.description,
                    scopes=part.scopes,
                    security=part.security,
                    reply=reply,
                )
            )
    parameters = _parameters(topic)
    extension: dict[str, Any] = {}
    if topic.channel_is_explicit:
        extension["channel"] = topic.channel
    if topic.overflow is not None:
        extension["overflow"] = topic.overflow.value
    if topic.max_queue is not None:
        extension["maxQueue"] = topic.max_queue
    return [
        Channel(
            key=home,
            address=asyncapi_address(topic.address),
            parameters=parameters,
            messages=homes[home],
            operations=operations[home],
            servers=_channel_servers(topic, has_websub),
            description=(
                topic.description
                if home == key
                else (topic.channel_docs.get(home) or {}).get("description")
            ),
            extension=extension if home == key else {},
        )
        for home in homes
    ]


def _reply(
    topic: Topic,
    reply: OperationReply | None,
    label: str,
    homes: dict[str, dict[str, Message]],
    home: str,
    payloads: Payloads,
    schemas: dict[str, Any],
) -> ReplySpec | None:
    """A reply, its messages in its channel: the operation's, another of the topic's, or
    another topic's (placed later by :func:`_place_replies`)."""
    if reply is None:
        return None
    payload, declared = payloads[(topic.address, label)]
    replies = _messages(home, "reply", payload, declared, schemas)
    target = home if reply.channel is None else reply.channel
    if target in homes:
        return ReplySpec(
            channel=None if target == home else target,
            messages=_add_messages(homes[target], replies, "reply"),
            address=reply.address,
        )
    return ReplySpec(channel=reply.channel, messages=[], address=reply.address, found=replies)


def _parameters(topic: Topic) -> list[Parameter]:
    parameters = []
    for name, convertor in topic.convertors.items():
        schema, wording = parameter_schema(convertor)
        if name in topic.parameter_docs:  # as the document said it
            docs = dict(topic.parameter_docs[name])
            schema = docs.pop("schema", None) or schema
            wording = docs.pop("description", None)
        else:
            docs = {}
        parameters.append(Parameter(name, schema, wording, docs))
    return parameters
