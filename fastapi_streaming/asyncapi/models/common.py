"""Objects that AsyncAPI 2.6 and 3.x share."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Model(BaseModel):
    """A closed AsyncAPI object: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Extensible(BaseModel):
    """An AsyncAPI object that may carry ``x-`` specification extensions."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Reference(Model):
    ref: str = Field(alias="$ref")

    @classmethod
    def to(cls, target: str) -> Reference:
        """A reference to ``target`` (``#/channels/quotes``)."""
        return cls.model_validate({"$ref": target})


class Contact(Extensible):
    name: str | None = None
    url: str | None = None
    email: str | None = None


class License(Extensible):
    name: str
    url: str | None = None


class ExternalDocs(Extensible):
    url: str
    description: str | None = None


class Tag(Extensible):
    name: str
    description: str | None = None
    externalDocs: ExternalDocs | None = None


class MessageExample(Extensible):
    payload: Any = None
    headers: dict[str, Any] | None = None
    name: str | None = None
    summary: str | None = None


#: A security scheme as the specification words it; its fields depend on its ``type``.
SecurityScheme = dict[str, Any]
#: A JSON Schema (AsyncAPI Schema Object).
Schema = dict[str, Any]
