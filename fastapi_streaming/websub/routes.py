"""The hub's HTTP surface: ``POST {prefix}/websub/hub`` and ``GET {prefix}/websub/{address}``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ..errors import StreamingError
from ..transports.common import concrete_address, error_response

if TYPE_CHECKING:
    from .hub import WebSubHub


def build_router(hub: WebSubHub) -> APIRouter:
    router = APIRouter()

    async def websub_hub(request: Request) -> Response:
        status, reason, headers = await hub.handle(request)
        return PlainTextResponse(reason + "\n", status, headers=headers or None)

    async def websub_topic(request: Request, address: str) -> Response:
        try:
            urls, latest = await hub.discover(request, concrete_address(address))
        except StreamingError as error:
            return error_response(error)
        headers = {"Link": f'<{urls.hub}>; rel="hub", <{urls.topic}>; rel="self"'}
        if latest is None:
            return Response(status_code=204, headers=headers)
        body, content_type = latest
        return Response(body, 200, headers=headers, media_type=content_type)

    router.add_api_route(hub.path + "/hub", websub_hub, methods=["POST"], include_in_schema=False)
    router.add_api_route(
        hub.path + "/{address:path}",
        websub_topic,
        methods=["GET", "HEAD"],
        include_in_schema=False,
    )
    return router
