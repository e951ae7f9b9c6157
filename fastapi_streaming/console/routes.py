"""The console's routes: the page and its assets, and the admin routes it calls.

=========================================================  =====================================
``GET {prefix}/console``                                   the page (admin scope)
``GET {prefix}/console/static/{name}``                     its script and style (no data in them)
``GET {prefix}/admin/snapshot``                            the board, as JSON
``GET {prefix}/admin/events``                              the board as SSE, an event per interval
``GET {prefix}/admin/usage``                               usage analytics (see the console guide)
``POST {prefix}/admin/principals/{principal}/disconnect``  end a principal's connections
``POST {prefix}/admin/websub/subscriptions/{id}/pause``    stop delivering to a subscription
``POST {prefix}/admin/websub/subscriptions/{id}/resume``   deliver again (what waited first)
``DELETE {prefix}/admin/websub/subscriptions/{id}``        remove a subscription
=========================================================  =====================================
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from ..errors import MalformedMessage, StreamingError
from ..owners import Owner
from ..queues import ClientQueue
from ..transports.common import error_response
from ..transports.sse import EventStream
from .service import Console

ASSETS = {"console.js": "text/javascript", "console.css": "text/css"}

Endpoint = Callable[[Request], Awaitable[Response]]


def _static(name: str) -> bytes:
    return resources.files(__package__).joinpath("static").joinpath(name).read_bytes()


def guarded(console: Console, endpoint: Endpoint) -> Endpoint:
    async def route(request: Request) -> Response:
        try:
            await console.guard.check(request)
            return await endpoint(request)
        except StreamingError as error:
            return error_response(error)

    return route


class SnapshotStream:
    """``GET {prefix}/admin/events``: the library's own SSE stream, fed by the console."""

    def __init__(self, console: Console) -> None:
        self.console = console

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        console = self.console
        try:
            admin = await console.guard.check(request)
        except StreamingError as error:
            await error_response(error)(scope, receive, send)
            return
        runtime = console.context.runtime
        queue = ClientQueue(2, "console")
        queue.owner = Owner(admin.subject)
        runtime.fanout.connect(queue)
        console.viewers.add(queue)
        try:
            first = await console.snapshot()
        except BaseException:
            await runtime.disconnect(queue, [])
            raise
        console.push_to(queue, first)
        await EventStream(runtime, queue, [], named=True)(scope, receive, send)


def _time_param(request: Request, name: str) -> float | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise MalformedMessage(
            f"{name} is a Unix time in seconds or an ISO 8601 date and time."
        ) from None


def build_routes(console: Console) -> list[BaseRoute]:
    prefix = console.context.prefix
    page = _static("console.html").decode()

    async def show_page(request: Request) -> Response:
        html = page.replace("{{prefix}}", prefix)
        return Response(html, media_type="text/html", headers={"Cache-Control": "no-store"})

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ASSETS:
            return JSONResponse({"detail": f"No console asset {name!r}."}, 404)
        return Response(_static(name), media_type=ASSETS[name])

    async def snapshot(request: Request) -> Response:
        return JSONResponse(await console.snapshot())

    async def usage(request: Request) -> Response:
        recorder = console.recorder
        if recorder is None:
            return JSONResponse({"detail": "Usage analytics are off (analytics=False)."}, 404)
        params = request.query_params
        records = await recorder.query(
            since=_time_param(request, "since"),
            until=_time_param(request, "until"),
            principal=params.get("principal"),
            plan=params.get("plan"),
            topic=params.get("topic"),
        )
        body: dict[str, Any] = {"bucket_seconds": recorder.settings.bucket_seconds}
        by = [name for name in params.get("by", "").split(",") if name]
        if by:
            from ..analytics import summarize

            try:
                body["totals"] = [total.as_dict() for total in summarize(records, by)]
            except ValueError as exc:
                raise MalformedMessage(str(exc)) from None
        else:
            body["records"] = [record.as_dict() for record in records]
        return JSONResponse(body)

    async def disconnect(request: Request) -> Response:
        assert console.disconnector is not None
        answer = await console.disconnector.disconnect(request.path_params["principal"])
        return JSONResponse(answer)

    def websub_action(action: str) -> Endpoint:
        async def act(request: Request) -> Response:
            from ..websub.admin import UnknownSubscription

            admin = console.hub_admin()
            if admin is None:
                return JSONResponse({"detail": "This API has no WebSub hub running."}, 404)
            subscription = int(request.path_params["subscription"])
            try:
                await getattr(admin, action)(subscription)
            except UnknownSubscription:
                return JSONResponse({"detail": f"No subscription {subscription}."}, 404)
            return JSONResponse({"id": subscription, "done": action})

        return act

    admin = prefix + "/admin"
    subscriptions = admin + "/websub/subscriptions/{subscription:int}"
    return [
        Route(prefix + "/console", guarded(console, show_page), methods=["GET"]),
        Route(prefix + "/console/static/{name}", asset, methods=["GET"]),
        Route(admin + "/snapshot", guarded(console, snapshot), methods=["GET"]),
        Route(admin + "/events", SnapshotStream(console), methods=["GET"]),
        Route(admin + "/usage", guarded(console, usage), methods=["GET"]),
        Route(
            admin + "/principals/{principal:path}/disconnect",
            guarded(console, disconnect),
            methods=["POST"],
        ),
        Route(subscriptions + "/pause", guarded(console, websub_action("pause")), methods=["POST"]),
        Route(
            subscriptions + "/resume", guarded(console, websub_action("resume")), methods=["POST"]
        ),
        Route(subscriptions, guarded(console, websub_action("delete")), methods=["DELETE"]),
    ]
