"""What a document declares: the topics to create, the constructor's options, the losses.

The readers of each version (:mod:`.read_v3`, :mod:`.read_v2`) fill these in;
:meth:`ImportedAPI.declare` adds the topics to a :class:`~fastapi_streaming.StreamingAPI`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from ..topics import Mode, OperationReply
from .reading import ImportWarning

if TYPE_CHECKING:
    from ..api import StreamingAPI

logger = logging.getLogger("fastapi_streaming.asyncapi")


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


@dataclass
class ImportedAPI:
    """What a document says: the constructor's options, the topics, and what is not kept."""

    options: dict[str, Any]
    topics: list[DeclaredTopic]
    warnings: list[ImportWarning] = field(default_factory=list)

    def declare(self, streaming: StreamingAPI) -> None:
        """Declare every topic on ``streaming``, without handlers."""
        for declared in self.topics:
            # The channel's own type is what the application sends: declare that first.
            ordered = sorted(declared.operations, key=lambda op: op.mode is not Mode.SUBSCRIBE)
            for operation in ordered:
                topic = streaming.add_operation(
                    operation.mode,
                    declared.address,
                    None,
                    payload=operation.payload,
                    scopes=operation.scopes,
                    channel=declared.channel,
                    name=declared.name,
                    summary=operation.summary,
                    description=operation.description,
                    overflow=declared.overflow if operation.mode is Mode.SUBSCRIBE else None,
                    max_queue=declared.max_queue if operation.mode is Mode.SUBSCRIBE else None,
                )
                declared_op = topic.operation(operation.mode)
                assert declared_op is not None
                declared_op.key = operation.key
                declared_op.security = operation.security
                if operation.reply is not None:
                    declared_op.reply = OperationReply(
                        payload=operation.reply.payload,
                        adapter=TypeAdapter(operation.reply.payload),
                        address=operation.reply.address,
                        channel=operation.reply.channel,
                    )
                topic.description = declared.description
                topic.parameter_docs = dict(declared.parameter_docs)
        streaming.topics.touch()
        for warning in self.warnings:
            logger.warning("AsyncAPI import of %r does not keep %s", streaming.title, warning)
