"""HTTP publish: ``POST {prefix}/publish/{address}`` with the event as the JSON body.

For applications that have no broker client and no socket: answer 202 with the event id once
the broker has the event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import PayloadTooLarge, StreamingError
from ..security.access import Access
from ..topics import Mode
from .common import authorize, charge_publish, concrete_address, error_response

if TYPE_CHECKING:
    from ..context import StreamingContext


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if (
        declared is not None
        and declared.isdigit()
        and (len(declared) > 18 or int(declared) > limit)
    ):
        raise PayloadTooLarge(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(limit)
    return bytes(body)


async def publish_over_http(
    streaming: StreamingContext, request: Request, address: str
) -> Response:
    runtime = streaming.runtime
    try:
        topic, _, params = runtime.resolve(address, Mode.PUBLISH)
        context = await authorize(streaming, request, [Access(topic, Mode.PUBLISH, params)])
        await charge_publish(streaming, request, context, topic)
        body = await read_body(request, streaming.max_message_size)
        event = await runtime.publish(address, json_data=body, context=context, via="http")
    except StreamingError as error:
        return error_response(error)
    if event is None:
        return JSONResponse({"id": None, "topic": address, "published": False}, 202)
    return JSONResponse({"id": event.id, "topic": address, "published": True}, 202)


def add_routes(router: APIRouter, streaming: StreamingContext) -> None:
    async def http_publish(request: Request, address: str) -> Response:
        return await publish_over_http(streaming, request, concrete_address(address))

    async def health() -> Response:
        """Readiness: 200 while the broker is reachable, 503 while it is being reconnected."""
        report = await streaming.runtime.health()
        return JSONResponse(report, 200 if report["status"] == "ok" else 503)

    router.add_api_route(
        streaming.prefix + "/health", health, methods=["GET"], include_in_schema=False
    )
    router.add_api_route(
        streaming.prefix + "/publish/{address:path}",
        http_publish,
        methods=["POST"],
        include_in_schema=False,
    )
