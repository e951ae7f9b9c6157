"""What every transport shares: finding topics, asking for access, answering errors."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket

from ..errors import StreamingError
from ..fanout import TOKEN_EXPIRED, ClientQueue, CloseReason
from ..limits.answers import QUOTA_EXCEEDED, Refusal
from ..owners import SCOPE_KEY as OWNER_KEY
from ..owners import Owner, default_owner_key
from ..security.principal import Principal
from ..topics import Mode, Topic
from ..uvicorn_support import refused_on_purpose

if TYPE_CHECKING:
    from ..context import StreamingContext
    from ..limits import Lease, Meter


async def authorize(
    streaming: StreamingContext,
    connection: HTTPConnection,
    accesses: Sequence[tuple[Topic, Mode]],
) -> list[object]:
    """Check the client may use every topic it asks for; return the handlers' context objects."""
    context: list[object] = [connection]
    context.extend(await streaming.authorize(connection, accesses))
    return context


def asks_for_snapshot(value: str | None) -> bool:
    """``?snapshot=true`` (or ``1``, ``yes``): the client wants the current rows first."""
    return value is not None and value.lower() in ("1", "true", "yes")


def principal_of(context: Sequence[object]) -> Principal | None:
    return next((item for item in context if isinstance(item, Principal)), None)


def owner_of(
    streaming: StreamingContext,
    connection: HTTPConnection,
    context: Sequence[object],
    queue: ClientQueue | None = None,
) -> Owner:
    """Whom the connection belongs to (made once per connection, kept in its scope, so its
    publishes are counted to it too); given to ``queue`` when there is one."""
    owner = connection.scope.get(OWNER_KEY)
    if not isinstance(owner, Owner):
        principal = principal_of(context)
        limits = streaming.limits
        if limits is not None:
            key = limits.settings.key(principal, connection)
        else:
            key = default_owner_key(principal.subject if principal else None, connection)
        owner = connection.scope[OWNER_KEY] = Owner(key)
    if queue is not None:
        queue.owner = owner
    return owner


def note_plan(owner: Owner, topic: Topic, meter: Meter | None) -> None:
    """Remember the plan a topic meters the owner under, for usage analytics."""
    if meter is not None:
        owner.plans[topic.address] = meter.plan.name


async def note_lease_plan(owner: Owner, lease: Lease | None, topic: Topic, mode: Mode) -> None:
    if lease is not None:
        note_plan(owner, topic, await lease.meter(topic, mode))


async def charge_publish(
    streaming: StreamingContext, connection: HTTPConnection, context: Sequence[object], topic: Topic
) -> None:
    """Count a publish against the client's plan; raises ``QuotaExceeded`` when over it."""
    owner = owner_of(streaming, connection, context)
    limits = streaming.limits
    if limits is None:
        return
    meter = await limits.meter(connection, principal_of(context), topic, Mode.PUBLISH)
    note_plan(owner, topic, meter)
    if meter is not None:
        await limits.charge(meter, 1, publish=True)


def quota_reason(refusal: Refusal) -> CloseReason:
    """How a stream ended by its plan says so: the limit, and when to come back."""
    return CloseReason(QUOTA_EXCEEDED, refusal.describe(), retry_after=refusal.retry_after)


async def open_lease(
    streaming: StreamingContext,
    connection: HTTPConnection,
    context: Sequence[object],
    queue: ClientQueue,
) -> Lease | None:
    """What the connection holds under its plans (None when the API enforces none); a plan
    that runs out ends the stream through its queue."""
    limits = streaming.limits
    if limits is None:
        return None
    return await limits.open(
        connection, context, lambda refusal: queue.close(quota_reason(refusal))
    )


def expiry(context: Sequence[object]) -> float | None:
    """When the client's credentials expire (seconds since the epoch), if they ever do."""
    for item in context:
        if isinstance(item, Principal) and item.expires_at is not None:
            return item.expires_at.timestamp()
    return None


def end_at_expiry(queue: ClientQueue, expires_at: float) -> asyncio.TimerHandle:
    """Close the client's stream when its access token expires; cancel the returned timer if
    the stream ends first.

    A stream opened with a token must not outlive it: a user whose access is revoked would
    otherwise keep receiving events for as long as the connection lasts.
    """
    return asyncio.get_running_loop().call_later(
        max(0.0, expires_at - time.time()),
        queue.close,
        CloseReason(TOKEN_EXPIRED, "the access token expired"),
    )


def from_http_exception(exc: HTTPException) -> StreamingError:
    """The error to answer for an ``HTTPException`` raised by the user's code (an
    authenticator, a dependency): the streams answer their errors themselves, in their own
    formats, without FastAPI's exception middleware."""
    error = StreamingError(exc.detail, headers=exc.headers)
    error.status_code = exc.status_code
    return error


def error_response(error: StreamingError) -> JSONResponse:
    return JSONResponse({"detail": error.detail}, error.status_code, headers=error.headers or None)


def error_text(error: StreamingError, request_id: Any = None) -> str:
    return json.dumps(error.to_message(request_id), separators=(",", ":"))


#: Close codes for a WebSocket refused before accept, when the server cannot send an HTTP
#: denial response: 4000 + the HTTP status the same request would get.
DENIAL_CLOSE_BASE = 4000


async def deny(websocket: WebSocket, error: StreamingError) -> None:
    """Refuse a WebSocket before accepting it, with the HTTP status an HTTP client would get."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(error_response(error))
        refused_on_purpose()
    else:
        await websocket.close(code=DENIAL_CLOSE_BASE + error.status_code, reason=error.error)


def concrete_address(path_tail: str) -> str:
    """Route parameters carry the address without its leading slash."""
    return "/" + path_tail.lstrip("/")
