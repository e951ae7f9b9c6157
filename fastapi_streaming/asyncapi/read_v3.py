"""Read an AsyncAPI 3.x document: channels become topics, operations their modes."""

from __future__ import annotations

from typing import Any

from ..topics import Mode
from .declared import DeclaredOperation, DeclaredReply, DeclaredTopic, ImportedAPI
from .errors import AsyncAPIImportError, pointer
from .models import v3
from .names import EXTENSION
from .reading import DocumentReader, own_bindings
from .validation import JsonSchemaPayload, payload_type

#: Fields of operations that have no counterpart in a topic's mode.
OPERATION_LOSSES = ("title", "tags", "externalDocs", "bindings")


class Reader3(DocumentReader):
    model = v3.AsyncAPI
    # Parameters have no schema in 3.0: ``x-schema`` types the address (``location`` is refused).
    parameter_schema = "x-schema"
    parameter_fields = ("description", "enum", "default", "examples")
    channel_losses = ("title", "summary", "tags", "externalDocs", "bindings")

    def __init__(self, document: dict[str, Any]) -> None:
        super().__init__(document)
        #: The messages operations and replies use, by channel pointer.
        self.used: dict[str, set[str]] = {}
        #: The topic address of each channel, by key.
        self.channel_addresses: dict[str, str] = {}

    def read(self) -> ImportedAPI:
        self.check_structure()
        document = self.document
        options = self.info_options(document["info"])
        if document.get("id"):
            self.warn(["id"], "the document's id")
        options.update(self.servers())
        operations = {
            key: self.follow(operation, ["operations", key])
            for key, operation in (document.get("operations") or {}).items()
        }
        used = {self.channel_of(op, at)[1] for op, at in operations.values()}
        replied = {
            pointer(self.follow(op["reply"]["channel"], [*at, "reply", "channel"])[1])
            for op, at in operations.values()
            if isinstance(op.get("reply"), dict) and op["reply"].get("channel") is not None
        }
        topics: dict[str, DeclaredTopic] = {}
        addresses: dict[str, DeclaredTopic] = {}
        replies_only: list[tuple[str, dict[str, Any], list[str | int]]] = []
        for key, channel in (document.get("channels") or {}).items():
            channel, where = self.follow(channel, ["channels", key])
            if pointer(where) not in used:
                if pointer(where) in replied:
                    replies_only.append((key, channel, where))  # only a reply's channel
                    continue
                raise AsyncAPIImportError(
                    pointer(where),
                    f"Channel {key!r} has no operation, so it cannot become a topic: add a "
                    "send or receive operation on it, or remove it.",
                )
            topic = self.topic(key, channel, where)
            self.channel_addresses[key] = topic.address
            first = addresses.get(topic.address)
            if first is None:
                addresses[topic.address] = topics[pointer(where)] = topic
                continue
            # Several channels on one address (one socket, messages told apart by content):
            # one topic, whose document describes each channel again.
            self.same_topic(first, topic, where)
            topics[pointer(where)] = first
        for key, channel, where in replies_only:
            address = self.topic(key, channel, where).address
            if address in addresses:
                addresses[address].channel_docs[key] = _channel_doc(channel)
                self.channel_addresses[key] = address
        for key, (operation, where) in operations.items():
            channel, channel_at = self.channel_of(operation, where)
            topic = topics[channel_at]
            declared = self.operation(key, operation, where, channel, channel_at)
            channel_key = channel_at.split("/")[-1].replace("~1", "/").replace("~0", "~")
            if channel_key != topic.name:
                declared.channel = channel_key
            topic.operations.append(declared)
        for channel_at in topics:
            if topics[channel_at].name != channel_at.split("/")[-1]:
                continue  # another channel on the same address: see same_topic()
            channel, where = self.follow({"$ref": "#" + channel_at}, [])
            for name in channel.get("messages") or {}:
                if name not in self.used.get(channel_at, ()):
                    self.warn([*where, "messages", name], "a message that no operation lists")
        if self.security_schemes:
            options["security_schemes"] = self.security_schemes
        unique = list({id(topic): topic for topic in topics.values()}.values())
        return ImportedAPI(options, unique, self.warnings)

    def servers(self) -> dict[str, Any]:
        """``public_url`` and ``prefix`` from a WebSocket server; security from all of them."""
        options: dict[str, Any] = {}
        requirements: dict[str, list[str]] = {}
        others: list[tuple[list[str | int], str, dict[str, Any]]] = []
        for key, server in (self.document.get("servers") or {}).items():
            server, where = self.follow(server, ["servers", key])
            found = self.server_options(
                server["protocol"], server["host"], server.get("pathname", "")
            )
            if found and "prefix" not in options:
                options.update(found)
            else:
                others.append((where, key, server))
            for index, item in enumerate(server.get("security") or []):
                name, scopes = self.scheme_requirement(
                    item, [*where, "security", index], f"{key}Security"
                )
                requirements.setdefault(name, [])
                requirements[name] = list(dict.fromkeys([*requirements[name], *scopes]))
        for where, key, server in others:
            if not self.own_server(options, server.get("pathname")):
                self.warn(
                    where,
                    f"server {key!r} ({server['protocol']}): the API is reached through its "
                    "own WebSocket, SSE and HTTP servers",
                )
        return self.server_security(options, requirements)

    def same_topic(
        self, first: DeclaredTopic, other: DeclaredTopic, where: list[str | int]
    ) -> None:
        """Join a channel to the topic of an earlier channel with the same address."""
        if (other.channel, other.overflow, other.max_queue) != (
            first.channel,
            first.overflow,
            first.max_queue,
        ):
            raise AsyncAPIImportError(
                pointer([*where, "address"]),
                f"Channel {other.name!r} has the address of channel {first.name!r} but another "
                f"{EXTENSION}: channels on one address are one topic, with one broker channel.",
            )
        if other.parameter_docs != first.parameter_docs:
            self.warn(
                [*where, "parameters"],
                f"parameters that differ from those of channel {first.name!r}, the first on "
                "the same address",
            )
        first.channel_docs[other.name] = {"description": other.description}
        self.channel_addresses[other.name] = first.address

    def channel_of(
        self, operation: dict[str, Any], where: list[str | int]
    ) -> tuple[dict[str, Any], str]:
        channel, channel_at = self.follow(operation["channel"], [*where, "channel"])
        if channel_at[:1] != ["channels"] or len(channel_at) != 2:
            raise AsyncAPIImportError(
                pointer([*where, "channel"]), "The operation's channel is not a channel."
            )
        return channel, pointer(channel_at)

    def topic(self, key: str, channel: dict[str, Any], where: list[str | int]) -> DeclaredTopic:
        return self.channel_topic(channel, where, channel.get("address"), [*where, "address"], key)

    def operation(
        self,
        key: str,
        operation: dict[str, Any],
        where: list[str | int],
        channel: dict[str, Any],
        channel_at: str,
    ) -> DeclaredOperation:
        operation = self.with_traits(operation, where)
        for lost in OPERATION_LOSSES:
            if operation.get(lost) and not (lost == "bindings" and own_bindings(operation[lost])):
                self.warn([*where, lost], f"the operation's {lost}")
        mode = Mode.SUBSCRIBE if operation["action"] == "send" else Mode.PUBLISH
        requirements = [
            self.scheme_requirement(item, [*where, "security", index], f"{key}Security")
            for index, item in enumerate(operation.get("security") or [])
        ]
        channel_where: list[str | int] = [part for part in channel_at.split("/") if part]
        messages = self.messages(operation.get("messages"), channel, channel_where, where)
        return DeclaredOperation(
            mode=mode,
            payload=payload_type(JsonSchemaPayload.one_of([p for _, p in messages])),
            scopes=self.scopes(operation, [scopes for _, scopes in requirements]),
            summary=operation.get("summary"),
            description=operation.get("description"),
            key=key,
            security=(
                tuple(dict.fromkeys(name for name, _ in requirements))
                if "security" in operation
                else None
            ),
            reply=self.reply(operation, where, channel_at, mode),
        )

    def messages(
        self,
        refs: list[Any] | None,
        channel: dict[str, Any],
        channel_at: list[str | int],
        where: list[str | int],
    ) -> list[tuple[str, JsonSchemaPayload]]:
        """Each message of an operation (all its channel's without a list), by channel key."""
        if refs is None:
            listed: list[tuple[Any, list[str | int]]] = [
                ({"$ref": pointer([*channel_at, "messages", name]).replace("/", "#/", 1)}, [])
                for name in channel.get("messages") or {}
            ]
        else:
            listed = [(ref, [*where, "messages", index]) for index, ref in enumerate(refs)]
        found = []
        used = self.used.setdefault(pointer(channel_at), set())
        for ref, at in listed:
            target = ref.get("$ref") if isinstance(ref, dict) else None
            parts = str(target or "").lstrip("#/").split("/")
            if len(parts) == 4 and parts[0] == "channels" and parts[2] == "messages":
                name = parts[3].replace("~1", "/").replace("~0", "~")
            else:
                name = str(parts[-1]) if target else str(at[-1])
            used.add(name)
            message, message_at = self.follow(ref, at or channel_at)
            found.append((name, self.payload(message, message_at, name)))
        if not found:
            raise AsyncAPIImportError(pointer(where), "The operation has no message.")
        return found

    def reply(
        self, operation: dict[str, Any], where: list[str | int], channel_at: str, mode: Mode
    ) -> DeclaredReply | None:
        """The reply of a ``receive`` operation: its messages and where it goes."""
        reply, at = self.follow(operation.get("reply"), [*where, "reply"])
        if reply is None:
            return None
        if mode is not Mode.PUBLISH:
            raise AsyncAPIImportError(
                pointer(at),
                "Only a receive operation can have a reply here: the application replies to "
                "what clients send.",
            )
        reply_channel, reply_at = self.follow(
            reply.get("channel", {"$ref": "#" + channel_at}), [*at, "channel"]
        )
        address, _ = self.follow(reply.get("address"), [*at, "address"])
        location = address.get("location") if isinstance(address, dict) else None
        if address is not None and not location:
            self.warn([*at, "address"], "a reply address without a location")
        reply_channel_key = str(reply_at[1]) if pointer(reply_at) != channel_at else None
        messages = self.messages(reply.get("messages"), reply_channel, reply_at, at)
        if reply_channel_key is not None and reply_channel_key not in self.channel_addresses:
            self.warn(
                reply_at,
                "a reply channel that no operation uses: the reply goes back on the "
                "request's own topic (and to the reply address, if any)",
            )
            reply_channel_key = None
        return DeclaredReply(
            payload=payload_type(JsonSchemaPayload.one_of([p for _, p in messages])),
            address=str(location) if location else None,
            channel=reply_channel_key,
        )


def _channel_doc(channel: dict[str, Any]) -> dict[str, Any]:
    return {"description": channel.get("description")}
