"""Create a streaming API's topics from an AsyncAPI 3.x or 2.x document.

Each channel becomes a topic: its address and parameters (typed by their schemas), a mode per
operation (3.x ``send`` / 2.x ``subscribe`` is a subscribe-mode topic; ``receive`` /
``publish`` a publish-mode one), the scopes the operation's security asks for, and the message
schema, against which incoming events are validated (:class:`.validation.JsonSchemaPayload`).
What cannot become a topic is an :class:`.errors.AsyncAPIImportError` naming the JSON pointer
of the offending part.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Protocol

import yaml

from ..topics import Mode, Topic, TopicRegistry
from .errors import AsyncAPIImportError, pointer
from .models import v2, v3
from .reading import DocumentReader
from .spec import channel_key
from .v2 import scheme_from_v2
from .validation import JsonSchemaPayload, payload_type


class Declarer(Protocol):
    """Where imported topics are declared: a streaming API (its ``add_operation``)."""

    topics: TopicRegistry

    def add_operation(
        self,
        mode: Mode,
        address: str,
        handler: None,
        *,
        scopes: tuple[str, ...] = (),
        channel: str | None = None,
        payload: Any = ...,
        name: str | None = None,
        summary: str | None = None,
        description: str | None = None,
        overflow: str | None = None,
        max_queue: int | None = None,
    ) -> Topic: ...


@dataclass
class DeclaredOperation:
    mode: Mode
    payload: Any
    scopes: tuple[str, ...] = ()
    summary: str | None = None
    description: str | None = None


@dataclass
class DeclaredTopic:
    address: str
    name: str
    description: str | None = None
    channel: str | None = None
    overflow: str | None = None
    max_queue: int | None = None
    operations: list[DeclaredOperation] = field(default_factory=list)


@dataclass
class ImportedAPI:
    """What a document says: the constructor's options and the topics to declare."""

    options: dict[str, Any]
    topics: list[DeclaredTopic]

    def declare(self, streaming: Declarer) -> None:
        """Declare every topic on ``streaming``, without handlers."""
        for declared in self.topics:
            # The channel's own type is what the application sends: declare that first.
            ordered = sorted(declared.operations, key=lambda op: op.mode is not Mode.SUBSCRIBE)
            for operation in ordered:
                topic = streaming.add_operation(
                    operation.mode,
                    declared.address,
                    None,
                    payload=operation.payload,
                    scopes=operation.scopes,
                    channel=declared.channel,
                    name=declared.name,
                    summary=operation.summary,
                    description=operation.description,
                    overflow=declared.overflow if operation.mode is Mode.SUBSCRIBE else None,
                    max_queue=declared.max_queue if operation.mode is Mode.SUBSCRIBE else None,
                )
            topic.description = declared.description
            streaming.topics.touch()


def load_document(source: str | PathLike[str] | Mapping[str, Any]) -> dict[str, Any]:
    """Read a document from a JSON or YAML file, or take an already parsed one."""
    if isinstance(source, Mapping):
        document: Any = json.loads(json.dumps(source))
    else:
        text = Path(source).read_text(encoding="utf-8")
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise AsyncAPIImportError("/", f"{source} is neither JSON nor YAML: {exc}") from None
    if not isinstance(document, dict):
        raise AsyncAPIImportError("/", "An AsyncAPI document is an object.")
    return document


def read_document(document: dict[str, Any]) -> ImportedAPI:
    """Work out the topics of a parsed document, or raise :class:`AsyncAPIImportError`."""
    version = document.get("asyncapi")
    if isinstance(version, str) and version.startswith("3."):
        return _Reader3(document).read()
    if isinstance(version, str) and version.startswith("2."):
        return _Reader2(document).read()
    raise AsyncAPIImportError(
        "/asyncapi", f"Unsupported AsyncAPI version {version!r}: use a 3.x or 2.x document."
    )


class _Reader3(DocumentReader):
    model = v3.AsyncAPI

    def read(self) -> ImportedAPI:
        self.check_structure()
        document = self.document
        options = self.info_options(document["info"])
        for server in (document.get("servers") or {}).values():
            server, _ = self.follow(server, ["servers"])
            found = self.server_options(
                server["protocol"], server["host"], server.get("pathname", "")
            )
            if found:
                options.update(found)
                break
        topics: dict[str, DeclaredTopic] = {}
        for key, channel in (document.get("channels") or {}).items():
            channel, where = self.follow(channel, ["channels", key])
            parameters = {}
            for name, parameter in (channel.get("parameters") or {}).items():
                parameter, at = self.follow(parameter, [*where, "parameters", name])
                if "location" in parameter:
                    raise AsyncAPIImportError(
                        pointer([*at, "location"]),
                        "Parameters read from the message are not supported.",
                    )
                parameters[name] = parameter.get("x-schema")
            address, broker = self.address(channel.get("address"), parameters, [*where, "address"])
            extension = self.extension(channel, where)
            topics[pointer(where)] = DeclaredTopic(
                address=address,
                name=key,
                description=channel.get("description"),
                channel=extension.get("channel", broker),
                overflow=extension.get("overflow"),
                max_queue=extension.get("maxQueue"),
            )
        for key, operation in (document.get("operations") or {}).items():
            operation, where = self.follow(operation, ["operations", key])
            if "reply" in operation:
                raise AsyncAPIImportError(
                    pointer([*where, "reply"]), "Request/reply operations are not supported."
                )
            channel, channel_at = self.follow(operation["channel"], [*where, "channel"])
            topic = topics.get(pointer(channel_at))
            if topic is None:
                raise AsyncAPIImportError(
                    pointer([*where, "channel"]), "The operation's channel is not a channel."
                )
            mode = Mode.SUBSCRIBE if operation["action"] == "send" else Mode.PUBLISH
            if any(op.mode is mode for op in topic.operations):
                raise AsyncAPIImportError(
                    pointer([*where, "action"]),
                    f"Channel {topic.name!r} already has a {operation['action']} operation; "
                    "a topic has one operation per mode.",
                )
            topic.operations.append(
                DeclaredOperation(
                    mode=mode,
                    payload=payload_type(
                        self.operation_payload(operation, channel, channel_at, where, mode)
                    ),
                    scopes=self.scopes(operation, self.requirements(operation, where)),
                    summary=operation.get("summary"),
                    description=operation.get("description"),
                )
            )
        return ImportedAPI(options, list(topics.values()))

    def operation_payload(
        self,
        operation: dict[str, Any],
        channel: dict[str, Any],
        channel_at: list[str | int],
        where: list[str | int],
        mode: Mode,
    ) -> JsonSchemaPayload:
        refs = operation.get("messages")
        if refs is None:
            listed = [
                (message, [*channel_at, "messages", name])
                for name, message in (channel.get("messages") or {}).items()
            ]
        else:
            listed = [(ref, [*where, "messages", index]) for index, ref in enumerate(refs)]
        messages = []
        for ref, at in listed:
            message, message_at = self.follow(ref, at)
            messages.append((message, message_at))
        if not messages:
            raise AsyncAPIImportError(pointer(where), "The operation has no message.")
        if len(messages) == 1:
            message, at = messages[0]
            return self.payload(message, at, str(at[-1]))
        payloads = [self.payload(message, at, str(at[-1])) for message, at in messages]
        return JsonSchemaPayload(
            {"oneOf": [payload.schema for payload in payloads]},
            components={k: v for p in payloads for k, v in p.components.items()},
            message={"key": f"{channel_key(str(channel.get('address')))}_{mode.value}"},
        )

    def requirements(
        self, operation: dict[str, Any], where: list[str | int]
    ) -> list[tuple[str, ...]]:
        found = []
        for index, requirement in enumerate(operation.get("security") or []):
            scheme, _ = self.follow(requirement, [*where, "security", index])
            found.append(tuple(scheme.get("scopes") or ()))
        return found


class _Reader2(DocumentReader):
    model = v2.AsyncAPI

    def read(self) -> ImportedAPI:
        self.check_structure()
        document = self.document
        options = self.info_options(document["info"])
        if "security_schemes" in options:
            options["security_schemes"] = {
                name: scheme_from_v2(scheme) for name, scheme in options["security_schemes"].items()
            }
        if document.get("tags"):
            options["tags"] = document["tags"]
        if document.get("externalDocs"):
            options["external_docs"] = document["externalDocs"]
        for server in (document.get("servers") or {}).values():
            server, _ = self.follow(server, ["servers"])
            found = re.match(r"^(wss?)://([^/]+)(/.*)?$", str(server.get("url", "")))
            if found:
                options.update(self.server_options(found[1], found[2], found[3] or ""))
                break
        topics = []
        for address_key, channel in document["channels"].items():
            where: list[str | int] = ["channels", address_key]
            if "$ref" in channel:
                raise AsyncAPIImportError(
                    pointer([*where, "$ref"]), "Channels defined elsewhere are not supported."
                )
            parameters = {}
            for name, parameter in (channel.get("parameters") or {}).items():
                parameter, at = self.follow(parameter, [*where, "parameters", name])
                if "location" in parameter:
                    raise AsyncAPIImportError(
                        pointer([*at, "location"]),
                        "Parameters read from the message are not supported.",
                    )
                parameters[name] = parameter.get("schema")
            address, broker = self.address(address_key, parameters, where)
            extension = self.extension(channel, where)
            topic = DeclaredTopic(
                address=address,
                name=str(channel.get("x-channel-id") or channel_key(address)),
                description=channel.get("description"),
                channel=extension.get("channel", broker),
                overflow=extension.get("overflow"),
                max_queue=extension.get("maxQueue"),
            )
            for mode in (Mode.SUBSCRIBE, Mode.PUBLISH):
                operation = channel.get(mode.value)
                if operation is None:
                    continue
                op_at: list[str | int] = [*where, mode.value]
                topic.operations.append(
                    DeclaredOperation(
                        mode=mode,
                        payload=payload_type(self.operation_payload(operation, op_at, topic, mode)),
                        scopes=self.scopes(
                            operation,
                            [
                                tuple(scope for scopes in req.values() for scope in scopes)
                                for req in operation.get("security") or []
                            ],
                        ),
                        summary=operation.get("summary"),
                        description=operation.get("description"),
                    )
                )
            topics.append(topic)
        return ImportedAPI(options, topics)

    def operation_payload(
        self, operation: dict[str, Any], where: list[str | int], topic: DeclaredTopic, mode: Mode
    ) -> JsonSchemaPayload:
        message, at = self.follow(operation.get("message"), [*where, "message"])
        if message is None:
            raise AsyncAPIImportError(pointer(where), "The operation has no message.")
        if "oneOf" in message:
            payloads = []
            for index, item in enumerate(message["oneOf"]):
                item, item_at = self.follow(item, [*at, "oneOf", index])
                payloads.append(self.payload(item, item_at, self.message_key(item, item_at)))
            return JsonSchemaPayload(
                {"oneOf": [payload.schema for payload in payloads]},
                components={k: v for p in payloads for k, v in p.components.items()},
                message={"key": f"{topic.name}_{mode.value}"},
            )
        return self.payload(message, at, self.message_key(message, at))

    @staticmethod
    def message_key(message: dict[str, Any], where: list[str | int]) -> str:
        """A message's key in a 3.x channel: its name (2.x ids must be unique per use)."""
        if message.get("name"):
            key = str(message["name"])
        elif message.get("messageId"):
            key = str(message["messageId"])
        elif where[:2] == ["components", "messages"]:
            key = str(where[2])
        else:
            key = "message"
        return re.sub(r"[^\w.\-]", "_", key)
