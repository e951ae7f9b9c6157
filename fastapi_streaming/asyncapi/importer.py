"""Create a streaming API's topics from an AsyncAPI 3.x or 2.x document.

Each channel becomes a topic: its address and parameters (typed by their schemas), a mode per
operation (3.x ``send`` / 2.x ``subscribe`` is a subscribe-mode topic; ``receive`` /
``publish`` a publish-mode one), the security and scopes the operation asks for, its reply,
and its messages, against which incoming events are validated
(:class:`.validation.JsonSchemaPayload`). What cannot become a topic is an
:class:`.errors.AsyncAPIImportError` naming the JSON pointer of the offending part; what the
created API does not keep is listed in its ``import_warnings`` (and logged), never dropped
silently.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import TypeAdapter

from ..security.access import AccessControl
from ..topics import Mode, OperationPart, OperationReply, Topic, TopicRegistry
from .declared import DeclaredOperation, DeclaredReply, DeclaredTopic, ImportedAPI
from .errors import AsyncAPIImportError
from .read_v2 import Reader2
from .read_v3 import Reader3
from .references import ReferenceBundler, Resolver, needs_bundling
from .validation import JsonSchemaPayload, json_schema_payload, payload_type


class Declarer(Protocol):
    """Where imported topics are declared: a streaming API (its ``add_operation``)."""

    topics: TopicRegistry
    title: str
    access: AccessControl

    def add_operation(
        self,
        mode: Mode,
        address: str,
        handler: None,
        *,
        scopes: tuple[str, ...] = (),
        channel: str | None = None,
        payload: Any = ...,
        name: str | None = None,
        summary: str | None = None,
        description: str | None = None,
        overflow: str | None = None,
        max_queue: int | None = None,
    ) -> Topic: ...


logger = logging.getLogger("fastapi_streaming.asyncapi")

__all__ = [
    "DeclaredOperation",
    "DeclaredReply",
    "DeclaredTopic",
    "ImportedAPI",
    "declare",
    "load_document",
    "read_document",
]


def load_document(
    source: str | PathLike[str] | Mapping[str, Any], resolver: Resolver | None = None
) -> dict[str, Any]:
    """Read a document from a JSON or YAML file, or take an already parsed one.

    References to other files are resolved against the document's own location (so only a
    document read from a path may have relative ones); remote ones only through ``resolver``.
    """
    base: Path | None = None
    if isinstance(source, Mapping):
        document: Any = json.loads(json.dumps(source))
    else:
        path = Path(source)
        text = path.read_text(encoding="utf-8")
        base = path.resolve().parent
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise AsyncAPIImportError("/", f"{source} is neither JSON nor YAML: {exc}") from None
    if not isinstance(document, dict):
        raise AsyncAPIImportError("/", "An AsyncAPI document is an object.")
    if needs_bundling(document):
        document = ReferenceBundler(base, resolver).bundle(document)
    return document  # type: ignore[no-any-return]


def declare(api: ImportedAPI, streaming: Declarer) -> None:
    """Declare every topic of ``api`` on ``streaming``, without handlers."""
    for declared in api.topics:
        modes: dict[Mode, list[DeclaredOperation]] = {}
        for operation in declared.operations:
            modes.setdefault(operation.mode, []).append(operation)
        # The channel's own type is what the application sends: declare that first.
        for mode in sorted(modes, key=lambda mode: mode is not Mode.SUBSCRIBE):
            several = modes[mode]
            first = several[0]
            combined = _combined(several) if len(several) > 1 or first.channel else first
            topic = streaming.add_operation(
                mode,
                declared.address,
                None,
                payload=combined.payload,
                scopes=combined.scopes,
                channel=declared.channel,
                name=declared.name,
                summary=combined.summary,
                description=combined.description,
                overflow=declared.overflow if mode is Mode.SUBSCRIBE else None,
                max_queue=declared.max_queue if mode is Mode.SUBSCRIBE else None,
            )
            created = topic.operation(mode)
            assert created is not None
            created.key = combined.key
            created.security = combined.security
            created.reply = _reply(combined.reply)
            if combined is not first:
                created.parts = [_part(declared_op) for declared_op in several]
            topic.description = declared.description
            topic.parameter_docs = dict(declared.parameter_docs)
            topic.channel_docs = dict(declared.channel_docs)
    streaming.topics.touch()
    for warning in api.warnings:
        logger.warning("AsyncAPI import of %r does not keep %s", streaming.title, warning)
    if streaming.access.require_auth and not streaming.access.authorizers:
        logger.warning(
            "The AsyncAPI document of %r requires authentication and the API has no "
            "authorizer: every client is refused. Pass authorizer=... to from_asyncapi.",
            streaming.title,
        )


def _marker(operation: DeclaredOperation) -> JsonSchemaPayload:
    marker = json_schema_payload(operation.payload)
    assert marker is not None  # what the readers declare
    return marker


def _combined(several: list[DeclaredOperation]) -> DeclaredOperation:
    """One mode for several operations: any of their messages, all of their scopes."""
    messages: dict[str, JsonSchemaPayload] = {}
    for operation in several:
        for message in _marker(operation).alternatives:
            messages.setdefault(str(message.message.get("key")), message)
    securities = [op.security for op in several if op.security is not None]
    return DeclaredOperation(
        mode=several[0].mode,
        payload=payload_type(JsonSchemaPayload.one_of(list(messages.values()))),
        scopes=tuple(dict.fromkeys(scope for op in several for scope in op.scopes)),
        security=tuple(dict.fromkeys(name for names in securities for name in names))
        if securities
        else None,
    )


def _part(operation: DeclaredOperation) -> OperationPart:
    marker = _marker(operation)
    return OperationPart(
        key=operation.key or "",
        messages=tuple(str(message.message.get("key")) for message in marker.alternatives),
        accepts=marker.accepts,
        channel=operation.channel,
        summary=operation.summary,
        description=operation.description,
        scopes=operation.scopes,
        security=operation.security,
        reply=_reply(operation.reply),
    )


def _reply(reply: DeclaredReply | None) -> OperationReply | None:
    if reply is None:
        return None
    return OperationReply(
        payload=reply.payload,
        adapter=TypeAdapter(reply.payload),
        address=reply.address,
        channel=reply.channel,
    )


def read_document(document: dict[str, Any]) -> ImportedAPI:
    """Work out the topics of a parsed document, or raise :class:`AsyncAPIImportError`."""
    version = document.get("asyncapi")
    if isinstance(version, str) and version.startswith("3."):
        return Reader3(document).read()
    if isinstance(version, str) and version.startswith("2."):
        return Reader2(document).read()
    raise AsyncAPIImportError(
        "/asyncapi", f"Unsupported AsyncAPI version {version!r}: use a 3.x or 2.x document."
    )
