"""What an ``amqp://`` URL says, and which channel names are valid routing keys.

``amqp://guest:guest@127.0.0.1:5672/vhost?exchange=fastapi_streaming`` (``amqps://`` for TLS).
``exchange`` names the durable topic exchange every process publishes to (``fastapi_streaming``
unless given); every other query option (``heartbeat``, ``name``, ...) goes to aio-pika as is.
The routing key of a message is its channel, so ``stocks.AAPL`` is routing key ``stocks.AAPL``.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastapi_streaming.redact import redact_url

DEFAULT_EXCHANGE = "fastapi_streaming"
MAX_ROUTING_KEY_BYTES = 255  # AMQP 0-9-1 short string


@dataclass(frozen=True)
class AMQPOptions:
    connection_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    exchange: str = DEFAULT_EXCHANGE

    @classmethod
    def from_url(cls, url: str) -> AMQPOptions:
        parts = urlsplit(url)
        if parts.scheme not in ("amqp", "amqps"):
            raise ValueError(f"not an AMQP URL (amqp:// or amqps://): {redact_url(url)!r}")
        query = parse_qsl(parts.query, keep_blank_values=True)
        ours = dict(item for item in query if item[0] == "exchange")
        rest = [item for item in query if item[0] != "exchange"]
        exchange = ours.get("exchange", DEFAULT_EXCHANGE)
        if not exchange or exchange.startswith("amq."):
            raise ValueError(
                f"exchange must be a non-empty name not starting with 'amq.': {redact_url(url)!r}"
            )
        connection_url = urlunsplit(parts._replace(query=urlencode(rest)))
        return cls(connection_url=connection_url, exchange=exchange)

    @staticmethod
    def routing_key(channel: str) -> str:
        """The channel itself, once checked: a binding key treats ``*`` and ``#`` as wildcards."""
        if not channel:
            raise ValueError("an AMQP channel name cannot be empty")
        if "*" in channel or "#" in channel:
            raise ValueError(f"channel {channel!r} contains an AMQP wildcard ('*' or '#')")
        if len(channel.encode("utf-8")) > MAX_ROUTING_KEY_BYTES:
            raise ValueError(
                f"channel {channel[:40]!r}... is longer than the {MAX_ROUTING_KEY_BYTES} bytes "
                "an AMQP routing key can hold"
            )
        return channel
