"""What a document declares: the topics to create, the constructor's options, the losses.

The readers of each version (:mod:`.read_v3`, :mod:`.read_v2`) fill these in;
:func:`.importer.declare` adds the topics to a :class:`~fastapi_streaming.StreamingAPI`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..topics import Mode


@dataclass(frozen=True)
class AsyncAPIImportWarning:
    """Something of the document that the created API does not keep, and where it is."""

    pointer: str
    reason: str

    def __str__(self) -> str:
        return f"{self.pointer}: {self.reason}"


@dataclass
class DeclaredReply:
    payload: Any
    address: str | None = None
    channel: str | None = None


@dataclass
class DeclaredOperation:
    mode: Mode
    payload: Any
    scopes: tuple[str, ...] = ()
    summary: str | None = None
    description: str | None = None
    key: str | None = None
    security: tuple[str, ...] | None = None
    reply: DeclaredReply | None = None
    #: The document channel it is on, when another channel has the topic's address first.
    channel: str | None = None


@dataclass
class DeclaredTopic:
    address: str
    name: str
    description: str | None = None
    channel: str | None = None
    overflow: str | None = None
    max_queue: int | None = None
    operations: list[DeclaredOperation] = field(default_factory=list)
    parameter_docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The other channels of the document on the same address, by key.
    channel_docs: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class ImportedAPI:
    """What a document says: the constructor's options, the topics, and what is not kept."""

    options: dict[str, Any]
    topics: list[DeclaredTopic]
    warnings: list[AsyncAPIImportWarning] = field(default_factory=list)
