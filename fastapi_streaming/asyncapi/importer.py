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
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ValidationError

from ..topics import Mode
from .errors import AsyncAPIImportError, pointer
from .models import v2, v3
from .schemas import COMPONENT_PREFIX, component_refs, convertor_name, referenced_components
from .spec import EXTENSION, SCOPES_EXTENSION, channel_key
from .v2 import scheme_from_v2
from .validation import JsonSchemaPayload, payload_type

if TYPE_CHECKING:
    from ..api import StreamingAPI

JSON_SCHEMA_FORMATS = re.compile(
    r"^application/(vnd\.aai\.asyncapi(\+json|\+yaml)?|schema\+(json|yaml));version=.*$"
)
_ADDRESS_PARAMETER = re.compile(r"{([^}]*)}")


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

    def declare(self, streaming: StreamingAPI) -> None:
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


class _Reader:
    """What reading both versions takes: checking structure, following references, schemas."""

    model: type[BaseModel]

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        components = document.get("components") or {}
        self.schemas: dict[str, Any] = components.get("schemas") or {}

    def check_structure(self) -> None:
        try:
            self.model.model_validate(self.document)
        except ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            raise AsyncAPIImportError(self.pointer_of(error["loc"]), error["msg"]) from None

    def pointer_of(self, loc: tuple[Any, ...]) -> str:
        """The JSON pointer of a pydantic error location, without its type names."""
        parts: list[str | int] = []
        node: Any = self.document
        for part in loc:
            if isinstance(node, dict) and part in node:
                node = node[part]
                parts.append(part)
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
                parts.append(part)
            elif isinstance(part, str) and part[:1].islower() and not isinstance(node, list):
                parts.append(part)  # a required field that is missing
                break
        return pointer(parts)

    def follow(self, value: Any, where: list[str | int]) -> tuple[Any, list[str | int]]:
        """Follow local ``$ref`` s to the object they name; external ones are not supported."""
        seen: set[str] = set()
        while isinstance(value, dict) and isinstance(value.get("$ref"), str):
            ref = value["$ref"]
            if not ref.startswith("#/") or ref in seen:
                raise AsyncAPIImportError(
                    pointer([*where, "$ref"]),
                    f"Only references within the document are supported, not {ref!r}.",
                )
            seen.add(ref)
            parts: list[str | int] = [
                p.replace("~1", "/").replace("~0", "~") for p in ref[2:].split("/")
            ]
            node: Any = self.document
            for part in parts:
                if isinstance(node, dict) and part in node:
                    node = node[part]
                else:
                    raise AsyncAPIImportError(
                        pointer([*where, "$ref"]), f"{ref!r} points at nothing."
                    )
            value, where = node, parts
        return value, where

    def payload(
        self, message: dict[str, Any], where: list[str | int], key: str
    ) -> JsonSchemaPayload:
        """The validator of one message's payload, keeping the message's documentation."""
        schema = message.get("payload", {})
        here = [*where, "payload"]
        fmt = message.get("schemaFormat")
        if isinstance(schema, dict) and "schemaFormat" in schema and "schema" in schema:
            fmt, schema, here = schema["schemaFormat"], schema["schema"], [*here, "schema"]
        if fmt is not None and not JSON_SCHEMA_FORMATS.match(str(fmt)):
            raise AsyncAPIImportError(
                pointer(here[:-1] if here[-1] == "schema" else [*where, "schemaFormat"]),
                f"Schema format {fmt!r} is not supported; use JSON Schema or AsyncAPI Schema.",
            )
        content_type = message.get("contentType") or self.document.get("defaultContentType")
        if content_type and not re.match(r"^application/([\w.-]+\+)?json", str(content_type)):
            raise AsyncAPIImportError(
                pointer([*where, "contentType"]),
                f"Content type {content_type!r} is not supported; events are JSON.",
            )
        if not isinstance(schema, (dict, bool)):
            raise AsyncAPIImportError(pointer(here), "A payload schema is an object.")
        self.check_refs(schema, here)
        meta = {
            "key": key,
            "name": message.get("name"),
            "title": message.get("title"),
            "summary": message.get("summary"),
            "description": message.get("description"),
            "contentType": message.get("contentType"),
            "examples": [
                example["payload"]
                for example in message.get("examples") or []
                if isinstance(example, dict) and "payload" in example
            ],
        }
        components = referenced_components(schema, self.schemas)
        for name, component in components.items():
            _check_schema(component, ["components", "schemas", name])
        _check_schema(schema, here)
        return JsonSchemaPayload(
            schema if isinstance(schema, dict) else {}, components=components, message=meta
        )

    def check_refs(self, schema: Any, where: list[str | int]) -> None:
        """Payload schemas may refer to ``#/components/schemas/...`` and nothing else."""
        if isinstance(schema, dict):
            ref = schema.get("$ref")
            if isinstance(ref, str):
                name = ref[len(COMPONENT_PREFIX) :]
                if not ref.startswith(COMPONENT_PREFIX) or name not in self.schemas:
                    raise AsyncAPIImportError(
                        pointer([*where, "$ref"]),
                        f"{ref!r} is not a schema under #/components/schemas.",
                    )
                for inner in component_refs(self.schemas[name]):
                    if inner not in self.schemas:
                        raise AsyncAPIImportError(
                            pointer(["components", "schemas", name]),
                            f"It refers to the missing schema {inner!r}.",
                        )
            for key, value in schema.items():
                self.check_refs(value, [*where, key])
        elif isinstance(schema, list):
            for index, item in enumerate(schema):
                self.check_refs(item, [*where, index])

    def address(
        self, address: Any, parameters: dict[str, Any], where: list[str | int]
    ) -> tuple[str, str | None]:
        """The topic address (with convertors) and, for a non-path address, its broker channel.

        An address that is not a path (``market.quotes.{symbol}``, a Kafka or MQTT topic) is
        served at ``/`` + the address, mapped onto that broker channel unchanged. ``where`` is
        the location of the address in the document.
        """
        if not isinstance(address, str) or not address:
            raise AsyncAPIImportError(
                pointer(where),
                "A channel without an address cannot become a topic.",
            )
        for name in _ADDRESS_PARAMETER.findall(address):
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise AsyncAPIImportError(
                    pointer(where), f"Parameter name {name!r} is not supported."
                )

        def typed(found: re.Match[str]) -> str:
            name = found.group(1)
            convertor = convertor_name(parameters.get(name))
            return f"{{{name}:{convertor}}}" if convertor else f"{{{name}}}"

        topic_address = _ADDRESS_PARAMETER.sub(typed, address)
        if address.startswith("/"):
            return topic_address, None
        return "/" + topic_address, address

    def info_options(self, info: dict[str, Any]) -> dict[str, Any]:
        options: dict[str, Any] = {"title": info["title"], "version": info["version"]}
        for source, target in (
            ("description", "description"),
            ("termsOfService", "terms_of_service"),
            ("contact", "contact"),
            ("license", "license_info"),
            ("tags", "tags"),
            ("externalDocs", "external_docs"),
        ):
            if info.get(source) is not None:
                options[target] = info[source]
        schemes = (self.document.get("components") or {}).get("securitySchemes")
        if schemes:
            options["security_schemes"] = schemes
        return options

    @staticmethod
    def server_options(protocol: str, host: str, path: str) -> dict[str, Any]:
        """``public_url`` and ``prefix`` from a WebSocket server at ``{prefix}/ws``."""
        if protocol not in ("ws", "wss") or not path.rstrip("/").endswith("/ws"):
            return {}
        scheme = "https" if protocol == "wss" else "http"
        return {"public_url": f"{scheme}://{host}", "prefix": path.rstrip("/")[: -len("/ws")]}

    @staticmethod
    def extension(channel: dict[str, Any], where: list[str | int]) -> dict[str, Any]:
        value = channel.get(EXTENSION) or {}
        if not isinstance(value, dict):
            raise AsyncAPIImportError(pointer([*where, EXTENSION]), "Expected an object.")
        return value

    @staticmethod
    def scopes(operation: dict[str, Any], requirements: list[tuple[str, ...]]) -> tuple[str, ...]:
        listed = operation.get(SCOPES_EXTENSION)
        if isinstance(listed, list):
            return tuple(str(scope) for scope in listed)
        return tuple(dict.fromkeys(scope for group in requirements for scope in group))


class _Reader3(_Reader):
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


class _Reader2(_Reader):
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


def _check_schema(schema: Any, where: list[str | int]) -> None:
    """Raise with the location of the first keyword that JSON Schema draft-07 rejects."""
    from jsonschema import Draft7Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft7Validator.check_schema(schema)
    except SchemaError as exc:
        raise AsyncAPIImportError(
            pointer([*where, *exc.relative_path]), f"Not a valid JSON Schema: {exc.message}"
        ) from None
