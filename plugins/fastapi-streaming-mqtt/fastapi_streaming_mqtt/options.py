"""What an ``mqtt://`` URL says, and how channel names map onto MQTT topics.

``mqtt://user:password@host:1883/site/a?qos=1&retain=false&client_id=web-1&keepalive=60``;
``mqtts://`` is the same over TLS (port 8883 by default). The path is a topic prefix, so one
broker can carry several applications. Channels are dot-separated (``stocks.AAPL``) and their
dots become MQTT topic levels (``site/a/stocks/AAPL``), so an existing MQTT topic tree can be
exposed unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from fastapi_streaming.redact import redact_url

#: The largest payload the MQTT protocol can carry (its "remaining length" field, minus nothing
#: we could count on): brokers are usually configured lower.
PROTOCOL_MAX_PAYLOAD = 268_435_455

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class MQTTOptions:
    hostname: str = "127.0.0.1"
    port: int = 1883
    tls: bool = False
    username: str | None = None
    password: str | None = None
    prefix: str = ""
    qos: int = 1
    retain: bool = False
    client_id: str | None = None
    keepalive: int = 60
    max_payload: int = PROTOCOL_MAX_PAYLOAD

    @classmethod
    def from_url(cls, url: str) -> MQTTOptions:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError(f"not an MQTT URL (mqtt:// or mqtts://): {redact_url(url)!r}")
        tls = parts.scheme == "mqtts"
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        unknown = set(query) - {"qos", "retain", "client_id", "keepalive", "max_payload"}
        if unknown:
            raise ValueError(f"unknown MQTT URL options: {', '.join(sorted(unknown))}")
        qos = int(query.get("qos", "1"))
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, not {qos}")
        prefix = unquote(parts.path).strip("/")
        _check_levels(prefix, what="topic prefix")
        return cls(
            hostname=parts.hostname or "127.0.0.1",
            port=parts.port or (8883 if tls else 1883),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            prefix=f"{prefix}/" if prefix else "",
            qos=qos,
            retain=_flag(query.get("retain", "false"), "retain"),
            client_id=query.get("client_id") or None,
            keepalive=int(query.get("keepalive", "60")),
            max_payload=int(query.get("max_payload", str(PROTOCOL_MAX_PAYLOAD))),
        )

    def topic(self, channel: str) -> str:
        """``stocks.AAPL`` -> ``<prefix>stocks/AAPL``; refuses names MQTT would misread."""
        if not channel:
            raise ValueError("an MQTT channel name cannot be empty")
        if "/" in channel:
            raise ValueError(
                f"channel {channel!r} contains '/': write topic levels as dots (stocks.AAPL)"
            )
        _check_levels(channel, what="channel")
        return self.prefix + channel.replace(".", "/")


def _check_levels(name: str, *, what: str) -> None:
    if "+" in name or "#" in name or "\x00" in name:
        raise ValueError(f"{what} {name!r} contains an MQTT wildcard ('+', '#') or NUL")


def _flag(value: str, name: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{name} must be true or false, not {value!r}")
