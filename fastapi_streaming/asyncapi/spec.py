"""The version-neutral description of a streaming API, built from its topics alone.

``describe_api`` reads an :class:`~.info.AsyncAPISource` (the API's info and its
:class:`~fastapi_streaming.topics.TopicRegistry`) and says what the API offers: servers, one
channel per topic, its messages and operations, and security. The generators of each AsyncAPI
version (:mod:`.v3`, :mod:`.v2`) only translate this description into their version's words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pydantic import TypeAdapter

from ..topics import Mode, Operation, Topic
from .info import AsyncAPISource
from .schemas import SchemaMode, parameter_schema, payload_schemas, resolve
from .security import security_schemes_of
from .validation import JsonSchemaPayload, json_schema_payload

DEFAULT_BASE_URL = "http://localhost:8000"
CONTENT_TYPE = "application/json"
#: The extension that keeps what AsyncAPI has no words for: the broker channel, the overflow
#: policy and the queue size of a topic.
EXTENSION = "x-fastapi-streaming"
SCOPES_EXTENSION = "x-scopes"
#: AsyncAPI operations have no ``deprecated`` field; this extension marks them, as tools do.
DEPRECATED_EXTENSION = "x-deprecated"


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


@dataclass
class OperationSpec:
    key: str
    mode: Mode
    message: str
    summary: str | None = None
    description: str | None = None
    scopes: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    deprecated: bool = False

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


def describe_api(source: AsyncAPISource, *, base_url: str | None = None) -> ApiSpec:
    """Describe ``source`` as clients at ``base_url`` (``http://host:port/root``) see it."""
    servers = _servers(source, base_url or DEFAULT_BASE_URL)
    has_websub = source.websub
    topics = sorted(
        (topic for topic in source.topics if _documented(topic)), key=lambda topic: topic.address
    )
    keys = _channel_keys(topics)
    payloads, schemas = _payloads(topics, keys)
    channels = [
        _channel(topic, keys[topic.address], payloads, schemas, has_websub) for topic in topics
    ]
    scopes = list(
        dict.fromkeys(scope for ch in channels for op in ch.operations for scope in op.scopes)
    )
    # ``require_auth`` comes with the authorizers (``StreamingAPI(require_auth=True)``).
    require_auth = source.access.require_auth
    info = source.info
    return ApiSpec(
        info=Info(
            title=info.title,
            version=info.version,
            description=info.description,
            terms_of_service=info.terms_of_service,
            contact=info.contact,
            license=info.license_info,
            tags=info.tags,
            external_docs=info.external_docs,
        ),
        servers=servers,
        channels=channels,
        schemas=dict(sorted(schemas.items())),
        security_schemes=security_schemes_of(
            source, bool(scopes) or require_auth, base_url or DEFAULT_BASE_URL, scopes
        ),
        require_auth=require_auth,
    )


# -- servers ---------------------------------------------------------------------------------


def _servers(source: AsyncAPISource, base_url: str) -> list[Server]:
    """One server per transport: where a client connects, and with which protocol."""
    parts = urlsplit(base_url if "://" in base_url else f"http://{base_url}")
    secure = parts.scheme in ("https", "wss")
    http, ws = ("https", "wss") if secure else ("http", "ws")
    root = parts.path.rstrip("/") + source.prefix
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
    if source.websub:
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


def channel_key(address: str) -> str:
    """A channel id from an address: ``/stocks/{symbol}`` -> ``stocks_symbol``."""
    words = re.findall(r"[A-Za-z0-9]+", re.sub(r":[^}]*}", "}", address))
    return "_".join(words) or "root"


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


def _documented_operations(topic: Topic) -> list[Operation]:
    """The topic's operations the document shows: not those with ``include_in_schema=False``."""
    return [
        operation
        for operation in (topic.subscribe, topic.publish)
        if operation is not None and operation.include_in_schema
    ]


def _documented(topic: Topic) -> bool:
    """A topic is in the document when one of its operations is."""
    return bool(_documented_operations(topic))


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


def _payloads(
    topics: list[Topic], keys: dict[str, str]
) -> tuple[dict[tuple[str, Mode], tuple[dict[str, Any], JsonSchemaPayload | None]], dict[str, Any]]:
    """Every operation's payload schema, and the shared schemas, generated in one pass."""
    inputs: list[tuple[str, SchemaMode, TypeAdapter[Any]]] = []
    declared: dict[tuple[str, Mode], JsonSchemaPayload] = {}
    for topic in topics:
        for operation in _documented_operations(topic):
            payload = _message_payload(topic, operation)
            marker = json_schema_payload(payload)
            if marker is not None:
                declared[(topic.address, operation.mode)] = marker
                continue
            schema_mode: SchemaMode = (
                "serialization" if operation.mode is Mode.SUBSCRIBE else "validation"
            )
            key = f"{operation.mode.value} {topic.address}"
            inputs.append((key, schema_mode, TypeAdapter(payload)))
    generated, schemas = payload_schemas(inputs)
    result: dict[tuple[str, Mode], tuple[dict[str, Any], JsonSchemaPayload | None]] = {}
    for topic in topics:
        for mode in (operation.mode for operation in _documented_operations(topic)):
            found = declared.get((topic.address, mode))
            if found is not None:
                for name, schema in found.components.items():
                    schemas.setdefault(name, schema)
                result[(topic.address, mode)] = (found.schema, found)
            else:
                result[(topic.address, mode)] = (generated[f"{mode.value} {topic.address}"], None)
    return result, schemas


def _message(
    channel: str,
    mode: Mode,
    payload: dict[str, Any],
    declared: JsonSchemaPayload | None,
    schemas: dict[str, Any],
) -> Message:
    if declared is not None and declared.message.get("key"):
        meta = declared.message
        return Message(
            key=meta["key"],
            payload=payload,
            name=meta.get("name"),
            title=meta.get("title"),
            summary=meta.get("summary"),
            description=meta.get("description"),
            examples=list(meta.get("examples") or []),
            content_type=meta.get("contentType") or CONTENT_TYPE,
        )
    target = resolve(payload, schemas)
    ref = payload.get("$ref", "")
    key = ref.rsplit("/", 1)[-1] if ref else f"{channel}_{mode.value}"
    examples = target.get("examples") if isinstance(target, dict) else None
    return Message(
        key=key,
        payload=payload,
        name=key,
        title=target.get("title") if isinstance(target, dict) else None,
        description=target.get("description") if isinstance(target, dict) else None,
        examples=list(examples) if isinstance(examples, list) else [],
    )


def _channel(
    topic: Topic,
    key: str,
    payloads: dict[tuple[str, Mode], tuple[dict[str, Any], JsonSchemaPayload | None]],
    schemas: dict[str, Any],
    has_websub: bool,
) -> Channel:
    messages: dict[str, Message] = {}
    operations: list[OperationSpec] = []
    for operation in _documented_operations(topic):
        payload, declared = payloads[(topic.address, operation.mode)]
        message = _message(key, operation.mode, payload, declared, schemas)
        same = messages.get(message.key)
        if same is not None and same.payload != message.payload:
            message.key = f"{message.key}_{operation.mode.value}"
        messages.setdefault(message.key, message)
        operations.append(
            OperationSpec(
                key=f"{operation.mode.value}_{key}",
                mode=operation.mode,
                message=message.key,
                summary=operation.summary,
                description=operation.description,
                scopes=operation.scopes,
                tags=operation.tags,
                deprecated=operation.deprecated,
            )
        )
    parameters = []
    for name, convertor in topic.convertors.items():
        schema, wording = parameter_schema(convertor)
        parameters.append(Parameter(name, schema, wording))
    extension: dict[str, Any] = {}
    if topic.channel_is_explicit:
        extension["channel"] = topic.channel
    if topic.overflow is not None:
        extension["overflow"] = topic.overflow.value
    if topic.max_queue is not None:
        extension["maxQueue"] = topic.max_queue
    if topic.derivation is not None:
        extension["derivedFrom"] = topic.derivation.describe()
    return Channel(
        key=key,
        address=asyncapi_address(topic.address),
        parameters=parameters,
        messages=messages,
        operations=operations,
        servers=_channel_servers(topic, has_websub),
        description=topic.description,
        extension=extension,
    )
