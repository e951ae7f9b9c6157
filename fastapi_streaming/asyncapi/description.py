"""The version-neutral description of a streaming API: what its AsyncAPI documents say.

:func:`.spec.describe_api` fills these in from the API's topics; the generators of each
version (:mod:`.v3`, :mod:`.v2`) translate them into their version's words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..topics import Mode

DEFAULT_BASE_URL = "http://localhost:8000"
CONTENT_TYPE = "application/json"


@dataclass
class Server:
    key: str
    protocol: str
    host: str
    pathname: str
    title: str
    description: str


@dataclass
class Parameter:
    name: str
    schema: dict[str, Any]
    description: str | None = None
    #: What a document said of the parameter besides its description (``enum``, ...).
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class Message:
    key: str
    payload: dict[str, Any]
    name: str | None = None
    title: str | None = None
    summary: str | None = None
    description: str | None = None
    examples: list[Any] = field(default_factory=list)
    content_type: str = CONTENT_TYPE
    #: Fields of a document's message written back as they were (``headers``, ...).
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReplySpec:
    #: The channel the reply is described on (its messages' home); the request's own if None.
    channel: str | None
    messages: list[str]
    address: str | None = None
    #: The messages, until they join their channel (see :func:`.channels.place_replies`).
    found: list[Message] = field(default_factory=list)


@dataclass
class OperationSpec:
    key: str
    mode: Mode
    messages: list[str]
    summary: str | None = None
    description: str | None = None
    scopes: tuple[str, ...] = ()
    #: The schemes that grant access, by name; None: every scheme of the API.
    security: tuple[str, ...] | None = None
    reply: ReplySpec | None = None
    tags: tuple[str, ...] = ()
    deprecated: bool = False

    @property
    def action(self) -> str:
        """What the application does: it sends what clients subscribe to, receives the rest."""
        return "send" if self.mode is Mode.SUBSCRIBE else "receive"


@dataclass
class Channel:
    key: str
    address: str
    parameters: list[Parameter]
    messages: dict[str, Message]
    operations: list[OperationSpec]
    servers: list[str]
    description: str | None = None
    extension: dict[str, Any] = field(default_factory=dict)


@dataclass
class Info:
    title: str
    version: str
    description: str | None = None
    terms_of_service: str | None = None
    contact: dict[str, Any] | None = None
    license: dict[str, Any] | None = None
    tags: list[dict[str, Any]] | None = None
    external_docs: dict[str, Any] | None = None


@dataclass
class ApiSpec:
    info: Info
    servers: list[Server]
    channels: list[Channel]
    schemas: dict[str, dict[str, Any]]
    security_schemes: dict[str, dict[str, Any]]
    content_type: str = CONTENT_TYPE
    #: Every operation needs credentials, even those without scopes.
    require_auth: bool = False
    #: What every server requires, ``{scheme: [scopes]}``; said once on the servers instead
    #: of on every operation.
    server_security: dict[str, list[str]] | None = None
