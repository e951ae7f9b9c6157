"""Read an AsyncAPI 2.x document: channels become topics, ``subscribe``/``publish`` their modes."""

from __future__ import annotations

import re
from typing import Any

from ..topics import Mode
from .declared import DeclaredOperation, DeclaredTopic, ImportedAPI
from .errors import AsyncAPIImportError, pointer
from .models import v2
from .reading import DocumentReader, own_bindings
from .validation import JsonSchemaPayload, payload_type

OPERATION_LOSSES = ("tags", "externalDocs", "bindings")


class Reader2(DocumentReader):
    model = v2.AsyncAPI
    parameter_fields = ("description", "schema")

    def read(self) -> ImportedAPI:
        self.check_structure()
        document = self.document
        options = self.info_options(document["info"])
        if document.get("id"):
            self.warn(["id"], "the document's id")
        if document.get("tags"):
            options["tags"] = document["tags"]
        if document.get("externalDocs"):
            options["external_docs"] = document["externalDocs"]
        options.update(self.servers())
        if self.security_schemes:
            options["security_schemes"] = {
                name: scheme_from_v2(scheme) for name, scheme in self.security_schemes.items()
            }
        topics = []
        for address_key, channel in document["channels"].items():
            where: list[str | int] = ["channels", address_key]
            if "$ref" in channel:
                raise AsyncAPIImportError(
                    pointer([*where, "$ref"]), "Channels defined elsewhere are not supported."
                )
            topic = self.topic(address_key, channel, where)
            for mode in (Mode.SUBSCRIBE, Mode.PUBLISH):
                operation = channel.get(mode.value)
                if operation is not None:
                    topic.operations.append(
                        self.operation(operation, [*where, mode.value], topic, mode)
                    )
            if not topic.operations:
                raise AsyncAPIImportError(
                    pointer(where),
                    f"Channel {address_key!r} has no operation, so it cannot become a topic: "
                    "add a subscribe or publish operation to it, or remove it.",
                )
            topics.append(topic)
        return ImportedAPI(options, topics, self.warnings)

    def servers(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        requirements: dict[str, list[str]] = {}
        others: list[tuple[list[str | int], str, dict[str, Any], str | None]] = []
        for key, server in (self.document.get("servers") or {}).items():
            server, where = self.follow(server, ["servers", key])
            found = re.match(r"^(\w+)://([^/]+)(/.*)?$", str(server.get("url", "")))
            served = (
                self.server_options(found[1], found[2], found[3] or "")
                if found and "prefix" not in options
                else {}
            )
            options.update(served)
            if not served:
                others.append((where, key, server, found[3] if found else None))
            for requirement in server.get("security") or []:
                for name, scopes in requirement.items():
                    known = requirements.setdefault(name, [])
                    requirements[name] = list(dict.fromkeys([*known, *scopes]))
        for where, key, server, path in others:
            if not self.own_server(options, path):
                self.warn(
                    where,
                    f"server {key!r} ({server.get('protocol')}): the API is reached through "
                    "its own WebSocket, SSE and HTTP servers",
                )
        return self.server_security(options, requirements)

    def topic(
        self, address_key: str, channel: dict[str, Any], where: list[str | int]
    ) -> DeclaredTopic:
        name = channel.get("x-channel-id")
        return self.channel_topic(channel, where, address_key, where, str(name) if name else None)

    def operation(
        self, operation: dict[str, Any], where: list[str | int], topic: DeclaredTopic, mode: Mode
    ) -> DeclaredOperation:
        operation = self.with_traits(operation, where)
        for lost in OPERATION_LOSSES:
            if operation.get(lost) and not (lost == "bindings" and own_bindings(operation[lost])):
                self.warn([*where, lost], f"the operation's {lost}")
        requirements = operation.get("security")
        return DeclaredOperation(
            mode=mode,
            payload=payload_type(self.operation_payload(operation, where)),
            scopes=self.scopes(
                operation,
                [
                    tuple(scope for scopes in req.values() for scope in scopes)
                    for req in requirements or []
                ],
            ),
            summary=operation.get("summary"),
            description=operation.get("description"),
            key=operation.get("operationId"),
            security=(
                tuple(dict.fromkeys(name for req in requirements for name in req))
                if requirements is not None
                else None
            ),
        )

    def operation_payload(
        self, operation: dict[str, Any], where: list[str | int]
    ) -> JsonSchemaPayload:
        message, at = self.follow(operation.get("message"), [*where, "message"])
        if message is None:
            raise AsyncAPIImportError(pointer(where), "The operation has no message.")
        if "oneOf" in message:
            payloads = []
            for index, item in enumerate(message["oneOf"]):
                item, item_at = self.follow(item, [*at, "oneOf", index])
                payloads.append(self.payload(item, item_at, self.message_key(item, item_at)))
            return JsonSchemaPayload.one_of(payloads)
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


def scheme_from_v2(scheme: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`scheme_for_v2`."""
    flows = scheme.get("flows")
    if not isinstance(flows, dict):
        return scheme
    renamed = {}
    for name, flow in flows.items():
        flow = dict(flow) if isinstance(flow, dict) else flow
        if isinstance(flow, dict) and "scopes" in flow:
            flow["availableScopes"] = flow.pop("scopes")
        renamed[name] = flow
    return {**scheme, "flows": renamed}
