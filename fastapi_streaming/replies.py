"""Request/reply: what a publish operation with a reply answers, and where the answer goes.

A publish operation declared with a reply (``@streaming.publish(..., reply=Model)``, or an
AsyncAPI 3 ``reply``) answers each request with what its handler returns. The runtime checks
the answer against the reply's type, sends it back to the requester (the transport correlates
it with the request's id) and, when the reply has an address, also publishes it to the topic
whose address the request names there (``$message.payload#/replyTo``, or
``$message.header#/replyTo`` for the request's ``headers``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic_core
from pydantic import BaseModel, ValidationError

from .errors import MalformedMessage, StreamingError
from .topics import OperationReply

PAYLOAD = "$message.payload#"
HEADER = "$message.header#"


class InvalidReply(StreamingError):
    """The handler's answer does not match the reply the topic declares (a server bug)."""

    status_code = 500


def reply_address(
    reply: OperationReply, request: Any, headers: Mapping[str, Any] | None
) -> str | None:
    """The topic address the request names for its reply; None when it names none."""
    if reply.address is None:
        return None
    if reply.address.startswith(PAYLOAD):
        source: Any = request.model_dump(mode="json") if isinstance(request, BaseModel) else request
        fragment, where = reply.address[len(PAYLOAD) :], "the event"
    elif reply.address.startswith(HEADER):
        source, fragment, where = headers or {}, reply.address[len(HEADER) :], '"headers"'
    else:
        return None  # not a runtime expression: nothing in the request to read
    value = _at_pointer(source, fragment)
    if value is None:
        return None  # the request names no reply address: the reply goes to its sender only
    if not isinstance(value, str) or not value:
        raise MalformedMessage(
            f"This topic replies to the address the request names at {fragment or '/'} of "
            f"{where}: give it there as a string."
        )
    return value if value.startswith("/") else "/" + value


def encode_reply(reply: OperationReply, answer: Any) -> tuple[Any, bytes]:
    """The validated answer and its JSON, or :class:`InvalidReply`."""
    try:
        value = reply.adapter.validate_python(answer)
    except ValidationError as exc:
        raise InvalidReply(
            f"The handler's reply does not match the topic's reply type: {exc.errors()[0]['msg']}"
        ) from None
    return value, pydantic_core.to_json(value)


def _at_pointer(document: Any, fragment: str) -> Any:
    node = document
    for part in [p for p in fragment.split("/") if p]:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node
