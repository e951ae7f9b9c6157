"""AsyncAPI 2.6 documents."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from .common import (
    Contact,
    Extensible,
    ExternalDocs,
    License,
    MessageExample,
    Reference,
    Schema,
    SecurityScheme,
    Tag,
)


class Info(Extensible):
    title: str
    version: str
    description: str | None = None
    termsOfService: str | None = None
    contact: Contact | None = None
    license: License | None = None


class Server(Extensible):
    url: str
    protocol: str
    description: str | None = None
    security: list[dict[str, list[str]]] | None = None
    bindings: dict[str, Any] | None = None


class Parameter(Extensible):
    description: str | None = None
    schema_: Schema | None = Field(default=None, alias="schema")
    location: str | None = None


class Message(Extensible):
    payload: Any = None
    headers: Schema | None = None
    contentType: str | None = None
    name: str | None = None
    messageId: str | None = None
    title: str | None = None
    summary: str | None = None
    description: str | None = None
    examples: list[MessageExample] | None = None
    bindings: dict[str, Any] | None = None


class OneOfMessages(Extensible):
    oneOf: list[Message | Reference]


class Operation(Extensible):
    operationId: str | None = None
    summary: str | None = None
    description: str | None = None
    security: list[dict[str, list[str]]] | None = None
    tags: list[Tag] | None = None
    bindings: dict[str, Any] | None = None
    message: Message | Reference | OneOfMessages | None = None


class ChannelItem(Extensible):
    description: str | None = None
    servers: list[str] | None = None
    subscribe: Operation | None = None
    publish: Operation | None = None
    parameters: dict[str, Parameter | Reference] | None = None
    bindings: dict[str, Any] | None = None


class Components(Extensible):
    schemas: dict[str, Schema] | None = None
    messages: dict[str, Message] | None = None
    parameters: dict[str, Parameter] | None = None
    securitySchemes: dict[str, SecurityScheme] | None = None


class AsyncAPI(Extensible):
    asyncapi: Literal["2.6.0", "2.5.0", "2.4.0", "2.3.0", "2.2.0", "2.1.0", "2.0.0"]
    id: str | None = None
    info: Info
    servers: dict[str, Server | Reference] | None = None
    defaultContentType: str | None = None
    channels: dict[str, ChannelItem]
    components: Components | None = None
    tags: list[Tag] | None = None
    externalDocs: ExternalDocs | None = None
