"""Reading a subscription request: the ``hub.*`` form fields, checked one by one.

Every refusal is a :class:`HubError` whose message is written for the developer of the
subscriber (WebSub 5.1.2 asks for a plain-text description of the error).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from ..topics import TopicRegistry
from .settings import WebSubSettings
from .ssrf import decode_unreserved

MODES = ("subscribe", "unsubscribe")
FORM = "application/x-www-form-urlencoded"


class HubError(Exception):
    """A subscription request the hub refuses, with the HTTP status and a readable reason."""

    def __init__(self, status: int, reason: str, headers: Mapping[str, str] | None = None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class Intent:
    """A well-formed subscribe or unsubscribe request."""

    mode: str
    #: The concrete topic address (``/stocks/AAPL``).
    address: str
    #: The topic as the subscriber named it; verification echoes it back unchanged.
    topic_url: str
    callback: str
    secret: str | None
    requested_lease: int | None


def parse_form(body: bytes, content_type: str | None) -> dict[str, str]:
    """The form's fields (the first value of each); unknown fields are kept but never used."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != FORM:
        raise HubError(415, f"Send the subscription request as {FORM} (WebSub 5.1).")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise HubError(400, "The request body must be UTF-8 (WebSub 5.1).") from None
    fields: dict[str, str] = {}
    for key, value in parse_qsl(text, keep_blank_values=True, max_num_fields=100):
        fields.setdefault(key, value)
    return fields


def topic_address(topic: str, topics_path: str, origin: str | None = None) -> str:
    """The address a ``hub.topic`` names: the topic URL ``.../websub/{address}`` (its ``self``
    link), that URL's path, or the plain address (``/stocks/AAPL``).

    With ``origin`` (the scheme and host of the configured public URL) a topic URL must be on
    it; without, any host is accepted, since behind proxies the app cannot know every name it
    is reached by.
    """
    if topic.startswith("/"):
        path = topic
    else:
        try:
            parts = urlsplit(topic)
        except ValueError:  # "http://[": an unclosed IPv6 host
            parts = urlsplit("")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise HubError(
                400, "hub.topic must be a topic URL (the rel=self link of a topic) or an address."
            )
        path = parts.path
        elsewhere = origin is not None and f"{parts.scheme}://{parts.netloc}".lower() != origin
        if elsewhere or not path.startswith(topics_path + "/"):
            raise HubError(404, f"hub.topic {topic!r} is not a topic of this hub.")
    if path.startswith(topics_path + "/"):
        path = path[len(topics_path) :]
    return unquote(path)


class IntentReader:
    """Turns a hub request's form into an :class:`Intent`, or refuses it."""

    def __init__(
        self, settings: WebSubSettings, topics: TopicRegistry, public_url: str | None = None
    ) -> None:
        self.settings = settings
        self.topics = topics
        self.origin: str | None = None
        public_url = settings.public_url or public_url
        if public_url:
            public = urlsplit(public_url)
            self.origin = f"{public.scheme}://{public.netloc}".lower()

    def read(self, fields: Mapping[str, str], topics_path: str) -> Intent:
        mode = self._required(fields, "hub.mode")
        if mode not in MODES:
            raise HubError(400, f"hub.mode must be 'subscribe' or 'unsubscribe', not {mode!r}.")
        topic_url = decode_unreserved(self._required(fields, "hub.topic"))
        callback = decode_unreserved(self._required(fields, "hub.callback"))
        address = self._address(topic_url, topics_path)
        secret = fields.get("hub.secret") or None
        if secret is not None and len(secret.encode()) > self.settings.max_secret_bytes:
            raise HubError(
                400,
                f"hub.secret is {len(secret.encode())} bytes; it must be at most "
                f"{self.settings.max_secret_bytes} (WebSub 5.1: less than 200 bytes).",
            )
        return Intent(
            mode=mode,
            address=address,
            topic_url=topic_url,
            callback=callback,
            secret=secret,
            requested_lease=self._lease(fields.get("hub.lease_seconds"), mode),
        )

    @staticmethod
    def _required(fields: Mapping[str, str], name: str) -> str:
        value = fields.get(name, "").strip()
        if not value:
            raise HubError(400, f"{name} is required.")
        return value

    def _address(self, topic_url: str, topics_path: str) -> str:
        address = topic_address(topic_url, topics_path, self.origin)
        found = self.topics.resolve(address)
        if found is None:
            raise HubError(404, f"hub.topic {topic_url!r} names no topic of this hub.")
        topic, params = found
        if topic.subscribe is None:
            raise HubError(400, f"Topic {address!r} cannot be subscribed to; it only takes events.")
        return topic.address_for(params)

    @staticmethod
    def _lease(value: str | None, mode: str) -> int | None:
        if value is None or value == "" or mode != "subscribe":
            return None  # WebSub 5.1: ignored on unsubscribe
        # A bounded number of digits: int() refuses more than 4,300 of them with ValueError.
        if not (value.isascii() and value.isdigit() and len(value) <= 18) or int(value) <= 0:
            raise HubError(
                400, f"hub.lease_seconds must be a positive integer, not {value[:40]!r}."
            )
        return int(value)
