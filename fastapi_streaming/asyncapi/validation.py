"""Validate events against a JSON Schema taken from an AsyncAPI document.

A topic created from a document has no pydantic model, only the document's message schema.
:class:`JsonSchemaPayload` is pydantic metadata: ``Annotated[Any, JsonSchemaPayload(...)]`` is
a payload type that ``TypeAdapter`` validates with the ``jsonschema`` package (draft-07, which
the AsyncAPI Schema Object extends), so topics, transports and ``emit`` treat it like any other
payload type, and the document generator writes the same schema back out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, get_args, get_origin

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema


class JsonSchemaPayload:
    """Pydantic metadata that checks a value against ``schema`` before anything else.

    ``components`` are the shared schemas that ``schema`` refers to as
    ``#/components/schemas/Name``; ``message`` keeps the document's message fields (name,
    title, summary, description, examples, headers...) so that they survive a round trip.
    An operation with several messages has one payload per message in ``messages``, and
    ``schema`` is their ``oneOf``: see :meth:`one_of`.
    """

    def __init__(
        self,
        schema: Mapping[str, Any],
        *,
        components: Mapping[str, Any] | None = None,
        message: Mapping[str, Any] | None = None,
        messages: Sequence[JsonSchemaPayload] = (),
    ) -> None:
        from jsonschema import Draft7Validator

        self.schema = dict(schema)
        self.components = dict(components or {})
        self.message = dict(message or {})
        self.messages = list(messages)
        root = {"allOf": [self.schema], "components": {"schemas": self.components}}
        Draft7Validator.check_schema(root)
        self._validator = Draft7Validator(root)

    @classmethod
    def one_of(cls, payloads: Sequence[JsonSchemaPayload]) -> JsonSchemaPayload:
        """One payload for an operation that takes any of several messages, each kept apart.

        An event is valid when it matches any one of them (``anyOf``: two messages that
        overlap do not make it invalid).
        """
        if len(payloads) == 1:
            return payloads[0]
        return cls(
            {"anyOf": [payload.schema for payload in payloads]},
            components={k: v for p in payloads for k, v in p.components.items()},
            messages=payloads,
        )

    @property
    def alternatives(self) -> list[JsonSchemaPayload]:
        """One payload per message: the several of :meth:`one_of`, or this one."""
        return self.messages or [self]

    def accepts(self, value: Any) -> bool:
        """True when ``value`` matches the schema (to tell which message a value is)."""
        return bool(self._validator.is_valid(value))

    def __repr__(self) -> str:
        return f"JsonSchemaPayload({self.schema!r})"

    def validate(self, value: Any) -> Any:
        """Return ``value`` unchanged if it matches the schema; raise pydantic's error if not.

        One pydantic error lists every problem, each with the JSON pointer of its place in the
        event, most relevant first.
        """
        from jsonschema.exceptions import relevance

        errors = sorted(self._validator.iter_errors(value), key=relevance, reverse=True)
        if errors:
            problems = "; ".join(
                f"{error.message} (at /{'/'.join(str(part) for part in error.absolute_path)})"
                for error in errors
            )
            raise PydanticCustomError("json_schema", "{problems}", {"problems": problems})
        return value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_before_validator_function(self.validate, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return dict(self.schema)


def json_schema_payload(payload: Any) -> JsonSchemaPayload | None:
    """The :class:`JsonSchemaPayload` of an ``Annotated`` payload type, if it has one."""
    if get_origin(payload) is Annotated:
        for item in get_args(payload)[1:]:
            if isinstance(item, JsonSchemaPayload):
                return item
    return None


def payload_type(marker: JsonSchemaPayload) -> Any:
    """The payload type of a topic that only the document describes: any JSON the schema admits."""
    return Annotated[Any, marker]
