"""AsyncAPI 3.0 and 3.1 documents (the two share every object fastapi-streaming writes)."""

from __future__ import annotations

from typing import Any, Literal

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
    tags: list[Tag] | None = None
    externalDocs: ExternalDocs | None = None


class Server(Extensible):
    host: str
    protocol: str
    pathname: str | None = None
    title: str | None = None
    summary: str | None = None
    description: str | None = None
    security: list[SecurityScheme | Reference] | None = None
    bindings: dict[str, Any] | None = None


class Parameter(Extensible):
    description: str | None = None
    enum: list[str] | None = None
    default: str | None = None
    examples: list[str] | None = None
    location: str | None = None


class Message(Extensible):
    payload: Schema | None = None
    headers: Schema | None = None
    contentType: str | None = None
    name: str | None = None
    title: str | None = None
    summary: str | None = None
    description: str | None = None
    examples: list[MessageExample] | None = None
    bindings: dict[str, Any] | None = None


class Channel(Extensible):
    address: str | None = None
    messages: dict[str, Message | Reference] | None = None
    title: str | None = None
    summary: str | None = None
    description: str | None = None
    servers: list[Reference] | None = None
    parameters: dict[str, Parameter | Reference] | None = None
    bindings: dict[str, Any] | None = None


class Operation(Extensible):
    action: Literal["send", "receive"]
    channel: Reference
    messages: list[Reference] | None = None
    title: str | None = None
    summary: str | None = None
    description: str | None = None
    security: list[SecurityScheme | Reference] | None = None
    tags: list[Tag] | None = None
    bindings: dict[str, Any] | None = None
    reply: dict[str, Any] | None = None


class Components(Extensible):
    schemas: dict[str, Schema] | None = None
    messages: dict[str, Message] | None = None
    channels: dict[str, Channel] | None = None
    parameters: dict[str, Parameter] | None = None
    securitySchemes: dict[str, SecurityScheme] | None = None


class AsyncAPI(Extensible):
    asyncapi: Literal["3.0.0", "3.1.0"]
    id: str | None = None
    info: Info
    servers: dict[str, Server | Reference] | None = None
    defaultContentType: str | None = None
    channels: dict[str, Channel | Reference] | None = None
    operations: dict[str, Operation | Reference] | None = None
    components: Components | None = None
