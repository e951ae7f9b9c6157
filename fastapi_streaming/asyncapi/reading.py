"""What reading AsyncAPI documents of every version takes.

Checking their structure against the typed models, following local references, turning
message payloads into validators and addresses into topic addresses, and pointing at the
offending part of a document when something is wrong.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import AsyncAPIImportError, pointer
from .schemas import COMPONENT_PREFIX, component_refs, convertor_name, referenced_components
from .spec import EXTENSION, SCOPES_EXTENSION
from .validation import JsonSchemaPayload

JSON_SCHEMA_FORMATS = re.compile(
    r"^application/(vnd\.aai\.asyncapi(\+json|\+yaml)?|schema\+(json|yaml));version=.*$"
)
_ADDRESS_PARAMETER = re.compile(r"{([^}]*)}")


class DocumentReader:
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
