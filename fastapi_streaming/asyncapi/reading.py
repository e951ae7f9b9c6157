"""What reading AsyncAPI documents of every version takes.

Checking their structure against the typed models, following local references, turning
message payloads into validators and addresses into topic addresses, and pointing at the
offending part of a document when something is wrong.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ValidationError

from .declared import AsyncAPIImportWarning, DeclaredTopic
from .errors import AsyncAPIImportError, pointer
from .names import EXTENSION, SCOPES_EXTENSION, channel_key
from .schemas import COMPONENT_PREFIX, component_refs, convertor_name, referenced_components
from .validation import JsonSchemaPayload

JSON_SCHEMA_FORMATS = re.compile(
    r"^application/(vnd\.aai\.asyncapi(\+json|\+yaml)?|schema\+(json|yaml));version=.*$"
)
_ADDRESS_PARAMETER = re.compile(r"{([^}]*)}")
#: Message fields written back out as they are (after references are followed).
KEPT_MESSAGE_FIELDS = ("headers", "correlationId", "bindings", "tags", "externalDocs")


class DocumentReader:
    """What reading both versions takes: checking structure, following references, schemas."""

    model: type[BaseModel]

    #: Where a parameter's schema is, and the parameter fields written back out (per version).
    parameter_schema = "schema"
    parameter_fields: tuple[str, ...] = ("description",)
    #: The channel fields a topic has no counterpart for: warned about when present.
    channel_losses: tuple[str, ...] = ("bindings",)

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        components = document.get("components") or {}
        self.schemas: dict[str, Any] = components.get("schemas") or {}
        #: What the created API does not keep: listed on it as ``import_warnings``.
        self.warnings: list[AsyncAPIImportWarning] = []
        self.security_schemes: dict[str, Any] = dict(components.get("securitySchemes") or {})

    def scheme_requirement(
        self, item: Any, where: list[str | int], owner: str
    ) -> tuple[str, tuple[str, ...]]:
        """A 3.x requirement (a scheme, or a reference to one) as a scheme name and scopes.

        A scheme written out in place is the named scheme it repeats, or joins the document's
        schemes as ``owner`` (``owner_2``...).
        """
        scheme, at = self.follow(item, where)
        if not isinstance(scheme, dict):
            raise AsyncAPIImportError(pointer(where), "A security requirement is an object.")
        scopes = tuple(str(scope) for scope in scheme.get("scopes") or ())
        if at[:2] == ["components", "securitySchemes"] and len(at) == 3:
            return str(at[2]), scopes
        bare = {key: value for key, value in scheme.items() if key != "scopes"}
        for name, known in self.security_schemes.items():
            if known == bare:
                return name, scopes
        # The same scheme with a description of its own (which scopes the token must grant).
        for name, known in self.security_schemes.items():
            if _undescribed(known) == _undescribed(bare):
                return name, scopes
        name, number = owner, 2
        while name in self.security_schemes:
            name, number = f"{owner}_{number}", number + 1
        self.security_schemes[name] = bare
        return name, scopes

    def warn(self, where: list[str | int], reason: str) -> None:
        self.warnings.append(AsyncAPIImportWarning(pointer(where) or "/", reason))

    def with_traits(self, node: dict[str, Any], where: list[str | int]) -> dict[str, Any]:
        """``node`` with its traits applied: what a trait says, unless ``node`` says it too."""
        merged = dict(node)
        for index, trait in enumerate(node.get("traits") or []):
            trait, _ = self.follow(trait, [*where, "traits", index])
            if isinstance(trait, dict):
                for key, value in trait.items():
                    merged.setdefault(key, value)
        merged.pop("traits", None)
        return merged

    def followed(self, value: Any, where: list[str | int]) -> Any:
        """``value`` with every reference within it followed (for fields kept as they are)."""
        value, where = self.follow(value, where)
        if isinstance(value, dict):
            return {key: self.followed(item, [*where, key]) for key, item in value.items()}
        if isinstance(value, list):
            return [self.followed(item, [*where, i]) for i, item in enumerate(value)]
        return value

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
        message = self.with_traits(message, where)
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
        kept = {}
        for name in KEPT_MESSAGE_FIELDS:
            if name == "headers" and isinstance(message.get(name), dict):
                self.check_refs(message[name], [*where, name])
                kept[name] = message[name]
            elif message.get(name) is not None:
                kept[name] = self.followed(message[name], [*where, name])
        examples = [e for e in message.get("examples") or [] if isinstance(e, dict)]
        if any(set(example) - {"payload"} for example in examples):
            kept["examples"] = examples
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
            "fields": kept,
        }
        components = referenced_components([schema, kept.get("headers")], self.schemas)
        for name, component in components.items():
            check_schema(component, ["components", "schemas", name])
        check_schema(schema, here)
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

    def channel_topic(
        self,
        channel: dict[str, Any],
        where: list[str | int],
        address: Any,
        address_at: list[str | int],
        name: str | None,
    ) -> DeclaredTopic:
        """The topic of a channel at ``where``, its address (at ``address_at``) typed by the
        channel's parameters; ``name`` defaults to the channel key of that address."""
        parameters, docs = self.channel_parameters(channel, where)
        topic_address, broker = self.address(address, parameters, address_at)
        extension = self.extension(channel, where)
        for lost in self.channel_losses:
            if channel.get(lost) and not (lost == "bindings" and own_bindings(channel[lost])):
                self.warn([*where, lost], f"the channel's {lost}")
        return DeclaredTopic(
            address=topic_address,
            name=name or channel_key(topic_address),
            description=channel.get("description"),
            channel=extension.get("channel", broker),
            overflow=extension.get("overflow"),
            max_queue=extension.get("maxQueue"),
            parameter_docs=docs,
        )

    def channel_parameters(
        self, channel: dict[str, Any], where: list[str | int]
    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """Each parameter's schema (which types the address) and the fields the document gave
        it, written back out as they were."""
        schemas: dict[str, Any] = {}
        docs: dict[str, dict[str, Any]] = {}
        for name, parameter in (channel.get("parameters") or {}).items():
            parameter, at = self.follow(parameter, [*where, "parameters", name])
            if "location" in parameter:
                raise AsyncAPIImportError(
                    pointer([*at, "location"]),
                    "Parameters read from the message are not supported.",
                )
            schemas[name] = parameter.get(self.parameter_schema)
            docs[name] = {
                field: parameter[field]
                for field in self.parameter_fields
                if parameter.get(field) is not None
            }
        return schemas, docs

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

    def server_security(
        self, options: dict[str, Any], requirements: dict[str, list[str]]
    ) -> dict[str, Any]:
        """Servers that ask for security make every client authenticate (``require_auth``).

        The document's servers are replaced by the API's own, which then carry the same
        requirements (``server_security``). Their scopes are listed but not checked: a client
        needs the scopes its operations ask for.
        """
        if requirements:
            options["require_auth"] = True
            options["server_security"] = requirements
            if any(requirements.values()):
                self.warn(
                    ["servers"],
                    "the scopes of the servers' security requirements: every client must "
                    "authenticate, but only the scopes of operations are checked",
                )
        return options

    @staticmethod
    def own_server(options: dict[str, Any], pathname: Any) -> bool:
        """True for the SSE, HTTP publish and WebSub servers of the API's own documents."""
        prefix = options.get("prefix")
        return prefix is not None and pathname in (
            f"{prefix}/sse",
            f"{prefix}/publish",
            f"{prefix}/websub",
        )

    @staticmethod
    def server_options(protocol: str, host: str, path: str) -> dict[str, Any]:
        """``public_url`` and ``prefix`` from a WebSocket server at ``{prefix}/ws``."""
        if protocol not in ("ws", "wss") or not path.rstrip("/").endswith("/ws"):
            return {}
        scheme = "https" if protocol == "wss" else "http"
        return {"public_url": f"{scheme}://{host}", "prefix": path.rstrip("/")[: -len("/ws")]}

    def extension(self, channel: dict[str, Any], where: list[str | int]) -> dict[str, Any]:
        value = channel.get(EXTENSION) or {}
        if not isinstance(value, dict):
            raise AsyncAPIImportError(pointer([*where, EXTENSION]), "Expected an object.")
        if "derivedFrom" in value:
            self.warn(
                [*where, EXTENSION, "derivedFrom"],
                "a derived topic is computed by code: it is imported as an ordinary topic; "
                "declare it with derive() to compute it here",
            )
        return value

    @staticmethod
    def scopes(operation: dict[str, Any], requirements: list[tuple[str, ...]]) -> tuple[str, ...]:
        listed = operation.get(SCOPES_EXTENSION)
        if isinstance(listed, list):
            return tuple(str(scope) for scope in listed)
        return tuple(dict.fromkeys(scope for group in requirements for scope in group))


def _undescribed(scheme: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in scheme.items() if key != "description"}


def own_bindings(bindings: Any) -> bool:
    """True for the bindings fastapi-streaming writes itself (``ws`` GET, ``http`` GET/POST)."""
    return isinstance(bindings, dict) and all(
        isinstance(binding, dict)
        and (name, binding.get("method")) in (("ws", "GET"), ("http", "GET"), ("http", "POST"))
        for name, binding in bindings.items()
    )


def check_schema(schema: Any, where: list[str | int]) -> None:
    """Raise with the location of the first keyword that JSON Schema draft-07 rejects."""
    from jsonschema import Draft7Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft7Validator.check_schema(schema)
    except SchemaError as exc:
        raise AsyncAPIImportError(
            pointer([*where, *exc.relative_path]), f"Not a valid JSON Schema: {exc.message}"
        ) from None
