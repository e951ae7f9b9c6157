"""JSON Schemas for the document: payloads from pydantic, parameters from address convertors.

pydantic writes JSON Schema 2020-12; an AsyncAPI Schema Object is a superset of draft-07. The
few keywords where the two disagree are rewritten here, so every payload pydantic can describe
passes the AsyncAPI parser.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import TypeAdapter
from starlette.convertors import (
    Convertor,
    FloatConvertor,
    IntegerConvertor,
    PathConvertor,
    UUIDConvertor,
)

COMPONENT_PREFIX = "#/components/schemas/"
REF_TEMPLATE = COMPONENT_PREFIX + "{model}"

SchemaMode = Literal["validation", "serialization"]


def payload_schemas(
    inputs: Iterable[tuple[str, SchemaMode, TypeAdapter[Any]]],
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The schema of each input by key, and the shared schemas they refer to, by name.

    Every model goes into the shared schemas once, however many topics use it; the payloads
    refer to it with ``#/components/schemas/Name``.
    """
    listed = list(inputs)
    if not listed:
        return {}, {}
    mapping, definitions = TypeAdapter.json_schemas(listed, ref_template=REF_TEMPLATE)
    payloads = {key: to_asyncapi_schema(schema) for (key, _), schema in mapping.items()}
    shared = {
        name: to_asyncapi_schema(schema) for name, schema in definitions.get("$defs", {}).items()
    }
    return payloads, shared


def to_asyncapi_schema(schema: Any) -> Any:
    """Rewrite the 2020-12 keywords pydantic uses into their draft-07 equivalents."""
    if isinstance(schema, list):
        return [to_asyncapi_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "prefixItems":
            result["items"] = to_asyncapi_schema(value)
            if schema.get("items") is False:
                result["additionalItems"] = False
        elif key == "items" and "prefixItems" in schema:
            continue
        elif key == "discriminator" and isinstance(value, dict):
            result[key] = value.get("propertyName")
        elif key in ("properties", "patternProperties", "$defs", "definitions"):
            result[key] = {name: to_asyncapi_schema(item) for name, item in value.items()}
        else:
            result[key] = to_asyncapi_schema(value)
    return result


def component_refs(schema: Any) -> set[str]:
    """The names of the shared schemas that ``schema`` refers to directly."""
    found: set[str] = set()
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith(COMPONENT_PREFIX):
            found.add(ref[len(COMPONENT_PREFIX) :])
        for value in schema.values():
            found |= component_refs(value)
    elif isinstance(schema, list):
        for item in schema:
            found |= component_refs(item)
    return found


def referenced_components(schema: Any, components: Mapping[str, Any]) -> dict[str, Any]:
    """Every shared schema that ``schema`` needs, following references transitively."""
    needed: dict[str, Any] = {}
    pending = sorted(component_refs(schema))
    while pending:
        name = pending.pop()
        if name in needed or name not in components:
            continue
        needed[name] = components[name]
        pending.extend(sorted(component_refs(components[name]) - set(needed)))
    return dict(sorted(needed.items()))


def resolve(schema: Any, components: Mapping[str, Any]) -> Any:
    """Follow a top-level ``$ref`` to the shared schema it names."""
    while isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
        ref = schema["$ref"]
        if not ref.startswith(COMPONENT_PREFIX):
            break
        schema = components.get(ref[len(COMPONENT_PREFIX) :], {})
    return schema


# -- address parameters --------------------------------------------------------------------

_CONVERTOR_SCHEMAS: list[tuple[type[Convertor[Any]], dict[str, Any], str]] = [
    (IntegerConvertor, {"type": "integer", "minimum": 0}, "A non-negative integer."),
    (FloatConvertor, {"type": "number", "minimum": 0}, "A non-negative number."),
    (UUIDConvertor, {"type": "string", "format": "uuid"}, "A UUID."),
    (PathConvertor, {"type": "string", "x-path": True}, "A path; it may contain slashes."),
]
_CONVERTOR_NAMES = {
    IntegerConvertor: "int",
    FloatConvertor: "float",
    UUIDConvertor: "uuid",
    PathConvertor: "path",
}


def parameter_schema(convertor: Convertor[Any]) -> tuple[dict[str, Any], str | None]:
    """The JSON Schema of an address parameter and, unless it is a plain string, its wording."""
    for kind, schema, wording in _CONVERTOR_SCHEMAS:
        if isinstance(convertor, kind):
            return dict(schema), wording
    return {"type": "string"}, None


def convertor_name(schema: Mapping[str, Any] | None) -> str | None:
    """The Starlette convertor that accepts what ``schema`` describes (``None`` for ``str``)."""
    if not schema:
        return None
    for kind, known, _ in _CONVERTOR_SCHEMAS:
        if all(schema.get(key) == value for key, value in known.items() if key != "minimum"):
            return _CONVERTOR_NAMES[kind]
    return None
