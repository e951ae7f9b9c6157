"""What a ``nats://`` URL says, and how channel names map onto NATS subjects.

``nats://user:password@host:4222`` publishes on core NATS: channel ``stocks.AAPL`` is subject
``stocks.AAPL`` (or ``<prefix>.stocks.AAPL`` with ``?prefix=``), and nothing is kept.

``nats://host:4222?jetstream=true`` (or ``?stream=NAME``) publishes into a JetStream stream
instead, so the broker keeps history: ``publish()`` returns once the stream has stored the
message. The stream (``FASTAPI_STREAMING`` unless named) is created when missing, capturing
``<prefix>.>`` (prefix ``fastapi_streaming`` unless given) and keeping messages ``max_age``
seconds (a day unless given; 0 keeps them until other limits apply).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit, urlunsplit

from fastapi_streaming.redact import redact_url

DEFAULT_STREAM = "FASTAPI_STREAMING"
DEFAULT_JETSTREAM_PREFIX = "fastapi_streaming"
DEFAULT_MAX_AGE = 86_400.0

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_OPTIONS = {
    "jetstream",
    "stream",
    "prefix",
    "max_age",
    "name",
    "reconnect_attempts",
    "reconnect_wait",
}


@dataclass(frozen=True)
class NATSOptions:
    server: str = "nats://127.0.0.1:4222"
    prefix: str = ""
    stream: str | None = None
    max_age: float = DEFAULT_MAX_AGE
    name: str = "fastapi-streaming"
    reconnect_attempts: int = 60
    reconnect_wait: float = 2.0

    @property
    def jetstream(self) -> bool:
        return self.stream is not None

    @classmethod
    def from_url(cls, url: str) -> NATSOptions:
        parts = urlsplit(url)
        if parts.scheme != "nats":
            raise ValueError(f"not a NATS URL (nats://): {redact_url(url)!r}")
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        unknown = set(query) - _OPTIONS
        if unknown:
            raise ValueError(f"unknown NATS URL options: {', '.join(sorted(unknown))}")
        stream = query.get("stream") or None
        jetstream = _flag(query.get("jetstream", "false"), "jetstream") or stream is not None
        if jetstream and stream is None:
            stream = DEFAULT_STREAM
        if stream is not None and not stream.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"a JetStream stream name is letters, digits, - and _: {stream!r}")
        prefix = query.get("prefix", DEFAULT_JETSTREAM_PREFIX if jetstream else "").strip(".")
        if prefix:
            check_subject_tokens(prefix, what="subject prefix")
        max_age = float(query.get("max_age", DEFAULT_MAX_AGE))
        if max_age < 0:
            raise ValueError(f"max_age is a number of seconds, not {max_age}")
        netloc = parts.netloc or "127.0.0.1:4222"
        return cls(
            server=urlunsplit(("nats", netloc, "", "", "")),
            prefix=prefix,
            stream=stream,
            max_age=max_age,
            name=query.get("name", "fastapi-streaming"),
            reconnect_attempts=int(query.get("reconnect_attempts", "60")),
            reconnect_wait=float(query.get("reconnect_wait", "2")),
        )

    def subject(self, channel: str) -> str:
        """``stocks.AAPL`` -> ``[<prefix>.]stocks.AAPL``; refuses wildcards and blanks."""
        check_subject_tokens(channel, what="channel")
        return f"{self.prefix}.{channel}" if self.prefix else channel

    def subject_tokens(self, pattern: str) -> list[str]:
        """The tokens of the subject of a channel glob pattern (``clicks.*``), unchecked."""
        return [*self.prefix.split("."), *pattern.split(".")] if self.prefix else pattern.split(".")

    def channel_of(self, subject: str) -> str | None:
        """The channel of a subject (None: outside the prefix, not this backend's)."""
        if not self.prefix:
            return subject
        head = f"{self.prefix}."
        return subject[len(head) :] if subject.startswith(head) else None

    @property
    def stream_subjects(self) -> list[str]:
        """What a stream this backend creates captures."""
        return [f"{self.prefix}.>"]


def check_subject_tokens(name: str, *, what: str) -> None:
    tokens = name.split(".")
    if not name or any(not token for token in tokens):
        raise ValueError(f"{what} {name!r} has an empty token: NATS subjects are a.b.c")
    if any(char.isspace() for char in name) or any(t in ("*", ">") for t in tokens):
        raise ValueError(f"{what} {name!r} contains whitespace or a NATS wildcard ('*', '>')")


def _flag(value: str, name: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{name} must be true or false, not {value!r}")
