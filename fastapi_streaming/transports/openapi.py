"""HTTP publish in the app's OpenAPI document: one POST operation per publish topic.

Requests are served by the one catch-all route ``POST {prefix}/publish/{address:path}``, which
authorizes before it reads the body and validates the event itself. So that FastAPI's
``/docs`` still shows each topic as the HTTP endpoint it is (address parameters, the event's
JSON Schema as request body, the answers), this module adds one route per publish topic after
the catch-all, where requests never reach it: FastAPI builds its schema from the route's
signature, like any path operation's, and nothing else reads it.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

from fastapi import APIRouter, Body, Path
from pydantic import BaseModel

from ..topics import Topic

if TYPE_CHECKING:
    from ..context import StreamingContext

#: The Python types of Starlette's path convertors, for the documented path parameters.
CONVERTOR_TYPES: dict[str, type] = {"int": int, "float": float, "str": str, "path": str}


class PublishAccepted(BaseModel):
    """The answer to an accepted event (202)."""

    id: str | None
    topic: str
    published: bool


class ErrorDetail(BaseModel):
    """The answer to a refused event: what is wrong, in words."""

    detail: str


def add_publish_docs(
    router: APIRouter, streaming: StreamingContext, *, asyncapi_docs_url: str | None = None
) -> None:
    """Document every publish topic as ``POST {prefix}/publish{address}``; each links to the
    AsyncAPI page at ``asyncapi_docs_url`` for the ways to subscribe."""
    for topic in streaming.topics:
        operation = topic.publish
        if operation is None or not operation.include_in_schema:
            continue
        responses: dict[int | str, dict[str, Any]] = {
            404: {"model": ErrorDetail, "description": "No topic at this address"},
            413: {"model": ErrorDetail, "description": "The event is larger than the limit"},
            503: {"model": ErrorDetail, "description": "The broker cannot take events now"},
        }
        if operation.scopes or streaming.access.require_auth:
            responses[401] = {"model": ErrorDetail, "description": "No or invalid credentials"}
            responses[403] = {"model": ErrorDetail, "description": "Missing scopes"}
        description = operation.description or ""
        if asyncapi_docs_url:
            description += (
                f"\n\nPublishes one event to the topic `{topic.address}`. Subscribe to it over "
                f"WebSocket or Server-Sent Events: see the [AsyncAPI document]"
                f"({asyncapi_docs_url})."
            )
        router.add_api_route(
            streaming.prefix + "/publish" + _openapi_path(topic.address),
            _documentation_endpoint(topic, operation.payload),
            methods=["POST"],
            status_code=202,
            response_model=PublishAccepted,
            responses=responses,
            summary=operation.summary or f"Publish to {topic.address}",
            description=description.strip(),
            tags=list(operation.tags) or ["streaming"],
            deprecated=operation.deprecated or None,
            operation_id=f"publish_{_identifier(topic.name or topic.address)}",
        )


def _openapi_path(address: str) -> str:
    """``/rooms/{room:int}`` -> ``/rooms/{room}``: OpenAPI paths name parameters only."""
    return re.sub(r"{([a-zA-Z_][a-zA-Z0-9_]*)(:[^}]*)?}", r"{\1}", address)


def _identifier(text: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_") or "root"


def _documentation_endpoint(topic: Topic, payload: Any) -> Callable[..., Any]:
    """A function whose signature describes the publish request of ``topic``."""

    async def publish(**_: Any) -> NoReturn:  # pragma: no cover - never routed to
        raise RuntimeError("documentation only: the catch-all publish route serves requests")

    parameters = [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[_convertor_type(topic.address, name), Path()],
        )
        for name in topic.parameters
    ]
    parameters.append(
        inspect.Parameter(
            "event", inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[payload, Body()]
        )
    )
    publish.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    return publish


def _convertor_type(address: str, name: str) -> type:
    found = re.search(r"{" + re.escape(name) + r":([^}]*)}", address)
    return CONVERTOR_TYPES.get(found.group(1), str) if found else str
