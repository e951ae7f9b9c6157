"""What an AsyncAPI document is built from: the API's own words and the topics it offers.

The generators take an :class:`AsyncAPISource`, never the streaming API object: the document's
``info`` and where it is served (:class:`ApiInfo`), the topic registry, access control (for the
security schemes) and the transports' prefix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ..security.access import AccessControl
from ..topics import TopicRegistry
from .document_cache import DocumentCache
from .versions import DEFAULT_VERSION


@dataclass
class ApiInfo:
    """The document's ``info``, its servers' public URL, and where the document is served."""

    title: str = "Streaming API"
    version: str = "0.1.0"
    description: str | None = None
    terms_of_service: str | None = None
    contact: dict[str, Any] | None = None
    license_info: dict[str, Any] | None = None
    tags: list[dict[str, Any]] | None = None
    external_docs: dict[str, Any] | None = None
    public_url: str | None = None
    security_schemes: dict[str, dict[str, Any]] | None = None
    #: What every server requires, ``{scheme: [scopes]}`` (a document's servers' security).
    server_security: dict[str, list[str]] | None = None
    asyncapi_version: str = DEFAULT_VERSION
    asyncapi_url: str | None = "/asyncapi.json"
    asyncapi_yaml_url: str | None = "/asyncapi.yaml"
    asyncapi_docs_url: str | None = "/asyncapi"
    asyncapi_js_url: str | None = None
    asyncapi_css_url: str | None = None


@dataclass
class AsyncAPISource:
    """Everything the document of one streaming API is built from, and the built documents.

    Args:
        info: the API's title, version, public URL, security schemes and document URLs.
        topics: the topics to describe.
        access: the authorizers (whose security schemes are described) and ``require_auth``.
        prefix: where the transports' routes live, for the servers.
        websub: whether the WebSub hub is on, for its server.
    """

    info: ApiInfo
    topics: TopicRegistry
    access: AccessControl
    prefix: str = "/streams"
    websub: bool = False
    cache: DocumentCache[dict[str, Any]] = field(default_factory=DocumentCache, repr=False)


class HasAsyncAPISource(Protocol):
    """Anything that can say what its document is built from (a streaming API does)."""

    @property
    def asyncapi_source(self) -> AsyncAPISource: ...
