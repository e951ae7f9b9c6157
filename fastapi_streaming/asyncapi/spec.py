"""The version-neutral description of a streaming API, built from its topics alone.

``describe_api`` reads an :class:`~.info.AsyncAPISource` (the API's info and its
:class:`~fastapi_streaming.topics.TopicRegistry`) and says what the API offers: servers, one
channel per topic, its messages and operations, and security. The generators of each AsyncAPI
version (:mod:`.v3`, :mod:`.v2`) only translate this description into their version's words.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ..topics import Topic
from .channels import channels_of, documented, payloads_of, place_replies
from .description import DEFAULT_BASE_URL, ApiSpec, Info, Server
from .info import AsyncAPISource
from .names import channel_key
from .security import security_schemes_of


def describe_api(source: AsyncAPISource, *, base_url: str | None = None) -> ApiSpec:
    """Describe ``source`` as clients at ``base_url`` (``http://host:port/root``) see it."""
    servers = _servers(source, base_url or DEFAULT_BASE_URL)
    has_websub = source.websub
    topics = sorted(
        (topic for topic in source.topics if documented(topic)), key=lambda topic: topic.address
    )
    keys = _channel_keys(topics)
    payloads, schemas = payloads_of(topics, keys)
    channels = [
        channel
        for topic in topics
        for channel in channels_of(topic, keys[topic.address], payloads, schemas, has_websub)
    ]
    place_replies(channels)
    scopes = list(
        dict.fromkeys(scope for ch in channels for op in ch.operations for scope in op.scopes)
    )
    # ``require_auth`` comes with the authorizers (``StreamingAPI(require_auth=True)``).
    require_auth = source.access.require_auth
    info = source.info
    return ApiSpec(
        info=Info(
            title=info.title,
            version=info.version,
            description=info.description,
            terms_of_service=info.terms_of_service,
            contact=info.contact,
            license=info.license_info,
            tags=info.tags,
            external_docs=info.external_docs,
        ),
        servers=servers,
        channels=channels,
        schemas=dict(sorted(schemas.items())),
        security_schemes=security_schemes_of(
            source, bool(scopes) or require_auth, base_url or DEFAULT_BASE_URL, scopes
        ),
        require_auth=require_auth,
        server_security=info.server_security,
    )


# -- servers ---------------------------------------------------------------------------------


def _servers(source: AsyncAPISource, base_url: str) -> list[Server]:
    """One server per transport: where a client connects, and with which protocol."""
    parts = urlsplit(base_url if "://" in base_url else f"http://{base_url}")
    secure = parts.scheme in ("https", "wss")
    http, ws = ("https", "wss") if secure else ("http", "ws")
    root = parts.path.rstrip("/") + source.prefix
    host = parts.netloc
    servers = [
        Server(
            "websocket",
            ws,
            host,
            root + "/ws",
            "WebSocket",
            "One topic per socket at `{address}` below this path (the server sends each event "
            "as a JSON text frame, wrapped with its `id` with `?envelope=true`, which "
            "`?last_event_id=` resumes after; on a publish topic the client sends JSON text "
            "frames), or "
            "many topics on one socket at this path with `subscribe`, `unsubscribe` and "
            "`publish` control messages. A table topic sends its current rows first "
            '(`op: r`) with `?snapshot=true`, or `"snapshot": true` in `subscribe`.',
        ),
        Server(
            "sse",
            http,
            host,
            root + "/sse",
            "Server-Sent Events",
            "`GET` the topic's `{address}` below this path for one topic, or this path with "
            "`?topic=` repeated for many (each event is then named after its topic). "
            "`Last-Event-ID` resumes a stream; `?snapshot=true` sends a table topic's "
            "current rows first (`op: r`).",
        ),
        Server(
            "http",
            http,
            host,
            root + "/publish",
            "HTTP publish",
            "`POST` an event as a JSON body to the topic's `{address}` below this path: "
            "202 with the event id, 422 for an invalid event, 413 for one too large.",
        ),
    ]
    if source.websub:
        servers.append(
            Server(
                "websub",
                http,
                host,
                root + "/websub",
                "WebSub",
                "W3C WebSub: subscribe a callback at the hub (`POST hub` below this path, with "
                "`hub.mode`, `hub.topic`, `hub.callback`, `hub.secret`, `hub.lease_seconds`); "
                "events are then delivered to the callback.",
            )
        )
    return servers


# -- channels ---------------------------------------------------------------------------------


def _channel_keys(topics: list[Topic]) -> dict[str, str]:
    keys: dict[str, str] = {}
    taken: set[str] = set()
    for topic in topics:
        key = topic.name or channel_key(topic.address)
        candidate, number = key, 2
        while candidate in taken:
            candidate, number = f"{key}_{number}", number + 1
        taken.add(candidate)
        keys[topic.address] = candidate
    return keys
