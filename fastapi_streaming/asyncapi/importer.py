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
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import TypeAdapter

from ..topics import Mode, OperationReply
from .declared import DeclaredOperation, DeclaredReply, DeclaredTopic, ImportedAPI
from .errors import AsyncAPIImportError
from .read_v2 import Reader2
from .read_v3 import Reader3
from .references import ReferenceBundler, Resolver, needs_bundling

if TYPE_CHECKING:
    from ..api import StreamingAPI

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


def declare(api: ImportedAPI, streaming: StreamingAPI) -> None:
    """Declare every topic on ``streaming``, without handlers."""
    for declared in api.topics:
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
    for warning in api.warnings:
        logger.warning("AsyncAPI import of %r does not keep %s", streaming.title, warning)


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
