"""The channels of a streaming API's description: one per topic (and the other channels a
document had on the same address), with their messages, operations and parameters.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import TypeAdapter

from ..topics import Mode, Operation, OperationPart, OperationReply, Topic
from .description import CONTENT_TYPE, Channel, Message, OperationSpec, Parameter, ReplySpec
from .schemas import SchemaMode, parameter_schema, payload_schemas, resolve
from .validation import JsonSchemaPayload, json_schema_payload

_INLINE_CODE = re.compile(r"`([^`]*)`")


def plain_text(text: str | None) -> str | None:
    """A summary without Markdown's inline-code backticks.

    AsyncAPI reads descriptions as CommonMark but summaries as plain text, and the docs page
    shows a summary's backticks literally.
    """
    return _INLINE_CODE.sub(r"\1", text) if text else text


def place_replies(channels: list[Channel]) -> None:
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


def documented_operations(topic: Topic) -> list[Operation]:
    """The topic's operations the document shows: not those with ``include_in_schema=False``."""
    return [
        operation
        for operation in (topic.subscribe, topic.publish)
        if operation is not None and operation.include_in_schema
    ]


def documented(topic: Topic) -> bool:
    """A topic is in the document when one of its operations is."""
    return bool(documented_operations(topic))


def _described(topic: Topic) -> list[tuple[str, Any, SchemaMode]]:
    """What each operation of ``topic`` (and a reply) carries, and how pydantic sees it."""
    found: list[tuple[str, Any, SchemaMode]] = []
    for operation in documented_operations(topic):
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


def payloads_of(topics: list[Topic], keys: dict[str, str]) -> tuple[Payloads, dict[str, Any]]:
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
                summary=plain_text(meta.get("summary")),
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


def _operation_spec(
    operation: Operation,
    described: Operation | OperationPart,
    default_key: str,
    messages: list[str],
    reply: ReplySpec | None,
) -> OperationSpec:
    """An operation of the document: the whole ``operation``, or one of its parts.

    A part (an operation of an imported document that shares its topic with others) has its
    own name, texts, scopes and reply; tags and deprecation are the operation's.
    """
    return OperationSpec(
        key=described.key or default_key,
        mode=operation.mode,
        messages=messages,
        summary=plain_text(described.summary),
        description=described.description,
        scopes=described.scopes,
        security=described.security,
        reply=reply,
        tags=operation.tags,
        deprecated=operation.deprecated,
    )


def channels_of(
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
    for operation in documented_operations(topic):
        label = operation.mode.value
        payload, declared = payloads[(topic.address, label)]
        found = _messages(key, label, payload, declared, schemas)
        if not operation.parts:
            reply = _reply(topic, operation.reply, "reply", homes, key, payloads, schemas)
            messages = _add_messages(homes[key], found, label)
            operations[key].append(
                _operation_spec(operation, operation, f"{label}_{key}", messages, reply)
            )
            continue
        by_key = {message.key: message for message in found}
        for part in operation.parts:
            home = part.channel if part.channel in homes else key
            assert home is not None
            mine = [by_key[name] for name in part.messages if name in by_key]
            label_of_reply = f"reply {part.key}"
            reply = _reply(topic, part.reply, label_of_reply, homes, home, payloads, schemas)
            messages = _add_messages(homes[home], mine, label)
            operations[home].append(
                _operation_spec(operation, part, f"{label}_{key}", messages, reply)
            )
    parameters = _parameters(topic)
    extension: dict[str, Any] = {}
    if topic.channel_is_explicit:
        extension["channel"] = topic.channel
    if topic.overflow is not None:
        extension["overflow"] = topic.overflow.value
    if topic.max_queue is not None:
        extension["maxQueue"] = topic.max_queue
    if topic.derivation is not None:
        extension["derivedFrom"] = topic.derivation.describe()
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
    another topic's (placed later by :func:`place_replies`)."""
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
