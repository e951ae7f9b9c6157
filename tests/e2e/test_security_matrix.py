"""Every transport against every kind of token, on a real server with fastapi-users' tokens.

Rows are transports, columns are token cases. Each cell asserts the exact answer (status,
``WWW-Authenticate``, close code or ``error`` message) and that a client authorised beside it,
connected to the same topics before, keeps receiving events.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.e2e.conftest import SHORT_LIFETIME
from tests.support.auth import Tokens, claims
from tests.support.clients import SSEClient, receive_json, send_json, sse_stream
from tests.support.server import ServerProcess
from tests.support.websub import Received, Subscriber

REFUSALS = ["none", "malformed", "bad_signature", "expired", "wrong_audience", "missing_scope"]
INVALID = {
    "malformed": "The access token is malformed.",
    "bad_signature": "The access token's signature is not valid.",
    "expired": "The access token has expired.",
    "wrong_audience": "The access token is not meant for this API (audience).",
}
EXPIRED_CLOSE = {"reason": "token_expired", "detail": "the access token expired"}
QUOTE = {"symbol": "AAPL", "price": 187.5}


@dataclass(frozen=True)
class Observed:
    """What a refused client sees; fields a transport cannot carry are None."""

    status: int
    detail: str
    www_authenticate: str | None = None
    error: str | None = None


def expected(case: str, needed: tuple[str, ...], missing: str) -> Observed:
    scopes = " ".join(needed)
    if case == "none":
        detail = (
            f"Authentication required: send an access token with the scopes {scopes} in the "
            "Authorization header (Bearer) or the access_token query parameter."
        )
        return Observed(401, detail, "Bearer", "unauthorized")
    if case == "missing_scope":
        detail = f"The access token lacks the scopes {missing}; this request needs {scopes}."
        challenge = (
            f'Bearer error="insufficient_scope", error_description="{detail}", scope="{scopes}"'
        )
        return Observed(403, detail, challenge, "insufficient_scope")
    detail = INVALID[case]
    challenge = f'Bearer error="invalid_token", error_description="{detail}"'
    return Observed(401, detail, challenge, "invalid_token")


# -- clients ------------------------------------------------------------------------------


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token is not None else {}


def query(token: str | None) -> dict[str, str]:
    return {"access_token": token} if token is not None else {}


async def emit_quote(server: ServerProcess) -> str:
    """Emit a quote from server-side code; returns the event's id."""
    async with httpx.AsyncClient(base_url=server.url) as http:
        answer = await http.post("/test/emit/stocks/AAPL", json=QUOTE)
    assert answer.status_code == 200
    return str(answer.json()["id"])


async def publish_order(server: ServerProcess, token: str, symbol: str = "AAPL") -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url) as http:
        return await http.post(
            "/streams/publish/orders",
            json={"symbol": symbol, "quantity": 5},
            headers=bearer(token),
        )


async def emit_news(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        answer = await http.post("/test/emit/news", json={"headline": "markets open"})
    assert answer.status_code == 200


@asynccontextmanager
async def sse(
    server: ServerProcess, path: str, *, params: Any = None, headers: Any = None
) -> AsyncIterator[SSEClient]:
    """An open event stream the server accepted (200), its events collected in the background."""
    async with sse_stream(server.url, path, headers=headers, **(params or {})) as stream:
        assert stream.response is not None and stream.response.status_code == 200
        yield stream


async def refused_http(
    server: ServerProcess, method: str, path: str, *, params: Any = None, headers: Any = None
) -> Observed:
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
        http.stream(method, path, params=params, headers=headers, json=None) as response,
    ):
        body = json.loads(await response.aread())
    return Observed(response.status_code, body["detail"], response.headers.get("www-authenticate"))


async def refused_handshake(url: str, **options: Any) -> Observed:
    with pytest.raises(InvalidStatus) as refusal:
        async with connect(url, open_timeout=10, **options):
            pass
    response = refusal.value.response
    body = json.loads(response.body or b"{}")
    return Observed(response.status_code, body["detail"], response.headers.get("WWW-Authenticate"))


async def until_received(trigger: Any, receive: Any, timeout: float = 10) -> Any:
    """Trigger events until one arrives: a one-topic socket subscribes just after it opens."""
    deadline = time.monotonic() + timeout
    while True:
        await trigger()
        try:
            return await asyncio.wait_for(receive(), 0.3)
        except asyncio.TimeoutError:
            if time.monotonic() > deadline:
                raise


async def closed_with(ws: ClientConnection, timeout: float) -> tuple[int | None, str | None]:
    """Read until the server closes the socket; its close code and reason."""
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    return ws.close_code, ws.close_reason


# -- rows -----------------------------------------------------------------------------------


class Bystander(Protocol):
    async def receives(self) -> None: ...


class Row(Protocol):
    needed: tuple[str, ...]
    missing: str
    #: "http" (status, header, body), "message" (a socket's error message) or "websub" (the
    #: hub's answer, and for a known client without the scope a denial sent to the callback)
    carries: str

    def bystander(self, server: ServerProcess, token: str) -> Any: ...
    async def refuse(self, server: ServerProcess, token: str | None, case: str) -> Observed: ...
    async def serve(self, server: ServerProcess, token: str, tokens: Tokens) -> None: ...
    async def expire(self, server: ServerProcess, token: str) -> None: ...


class WebSocketOneTopic:
    needed = ("stocks:read",)
    missing = "stocks:read"
    carries = "http"
    path = "/streams/ws/stocks/AAPL"

    def url(self, server: ServerProcess, token: str | None) -> str:
        return server.ws_url + self.path + (f"?access_token={token}" if token else "")

    @asynccontextmanager
    async def bystander(self, server: ServerProcess, token: str) -> AsyncIterator[Bystander]:
        async with connect(self.url(server, token), open_timeout=10) as ws:
            await until_received(lambda: emit_quote(server), lambda: receive_json(ws))

            class Watch:
                async def receives(self) -> None:
                    await until_received(lambda: emit_quote(server), lambda: receive_json(ws))

            yield Watch()

    async def refuse(self, server: ServerProcess, token: str | None, case: str) -> Observed:
        return await refused_handshake(self.url(server, token))

    async def serve(self, server: ServerProcess, token: str, tokens: Tokens) -> None:
        async with connect(self.url(server, token), open_timeout=10) as ws:
            got = await until_received(lambda: emit_quote(server), lambda: receive_json(ws))
        assert got == QUOTE

    async def expire(self, server: ServerProcess, token: str) -> None:
        async with connect(self.url(server, token), open_timeout=10) as ws:
            await until_received(lambda: emit_quote(server), lambda: receive_json(ws))
            code, reason = await closed_with(ws, timeout=5)
        assert (code, reason) == (4401, "the access token expired")
        assert time.time() >= claims(token)["exp"]


class WebSocketMultiplexed:
    needed = ("orders:read",)
    missing = "orders:read"
    carries = "message"
    path = "/streams/ws"

    def open(self, server: ServerProcess, token: str | None) -> Any:
        return connect(server.ws_url + self.path, open_timeout=10, additional_headers=bearer(token))

    @asynccontextmanager
    async def bystander(self, server: ServerProcess, token: str) -> AsyncIterator[Bystander]:
        async with self.open(server, token) as ws:
            await send_json(ws, {"type": "subscribe", "id": "b", "topic": "/orders"})
            assert await receive_json(ws) == {"type": "ack", "id": "b"}

            class Watch:
                async def receives(self) -> None:
                    assert (await publish_order(server, token, "BYSTND")).status_code == 202
                    event = await receive_json(ws)
                    while event["data"]["symbol"] != "BYSTND":  # orders the cell placed
                        event = await receive_json(ws)
                    assert event["type"] == "event" and event["topic"] == "/orders"

            yield Watch()

    async def refuse(self, server: ServerProcess, token: str | None, case: str) -> Observed:
        async with self.open(server, token) as ws:
            # Topics the client may use, subscribed first, must survive the refusal.
            other = {"none": "/news", "missing_scope": "/stocks/AAPL"}.get(case)
            if other is not None:
                await send_json(ws, {"type": "subscribe", "id": "ok", "topic": other})
                assert await receive_json(ws) == {"type": "ack", "id": "ok"}
            await send_json(ws, {"type": "subscribe", "id": "s", "topic": "/orders"})
            error = await receive_json(ws)
            assert (error["type"], error["id"]) == ("error", "s")
            if other is not None:
                trigger = emit_news if other == "/news" else emit_quote
                await trigger(server)
                event = await receive_json(ws)
                assert (event["type"], event["topic"]) == ("event", other)
            else:
                # The socket stays open; a bad token is refused for public topics too.
                await send_json(ws, {"type": "subscribe", "id": "n", "topic": "/news"})
                again = await receive_json(ws)
                assert again == {**error, "id": "n"}
        return Observed(error["code"], error["detail"], None, error["error"])

    async def serve(self, server: ServerProcess, token: str, tokens: Tokens) -> None:
        async with self.open(server, token) as ws:
            await send_json(ws, {"type": "subscribe", "id": 1, "topic": "/orders"})
            assert await receive_json(ws) == {"type": "ack", "id": 1}
            order = {"symbol": "MSFT", "quantity": 3}
            await send_json(ws, {"type": "publish", "id": 2, "topic": "/orders", "data": order})
            replies = [await receive_json(ws), await receive_json(ws)]
        event = next(reply for reply in replies if reply["type"] == "event")
        assert event["data"] == {**order, "placed_by": tokens.account.email}

    async def expire(self, server: ServerProcess, token: str) -> None:
        async with self.open(server, token) as ws:
            await send_json(ws, {"type": "subscribe", "id": 1, "topic": "/orders"})
            assert await receive_json(ws) == {"type": "ack", "id": 1}
            code, reason = await closed_with(ws, timeout=5)
        assert (code, reason) == (4401, "the access token expired")
        assert time.time() >= claims(token)["exp"]


class SSEOneTopic:
    needed = ("stocks:read",)
    missing = "stocks:read"
    carries = "http"
    path = "/streams/sse/stocks/AAPL"

    @asynccontextmanager
    async def bystander(self, server: ServerProcess, token: str) -> AsyncIterator[Bystander]:
        async with sse(server, self.path, params=query(token)) as stream:

            class Watch:
                async def receives(self) -> None:
                    count = len(stream.events)
                    await emit_quote(server)
                    await stream.wait_for(count + 1)

            yield Watch()

    async def refuse(self, server: ServerProcess, token: str | None, case: str) -> Observed:
        return await refused_http(server, "GET", self.path, params=query(token))

    async def serve(self, server: ServerProcess, token: str, tokens: Tokens) -> None:
        async with sse(server, self.path, params=query(token)) as stream:
            await emit_quote(server)
            await stream.wait_for(1)
        assert stream.data() == [QUOTE]

    async def expire(self, server: ServerProcess, token: str) -> None:
        async with sse(server, self.path, params=query(token)) as stream:
            await emit_quote(server)
            await stream.wait_for(1)
            await asyncio.wait_for(stream.ended.wait(), 5)
        last = stream.events[-1]
        assert (last.event, json.loads(last.data)) == ("close", EXPIRED_CLOSE)
        assert time.time() >= claims(token)["exp"]


class SSEMultiTopic:
    needed = ("stocks:read", "orders:read")
    missing = "orders:read"
    carries = "http"
    path = "/streams/sse"
    params: ClassVar = {"topic": ["/stocks/AAPL", "/orders"]}

    @asynccontextmanager
    async def bystander(self, server: ServerProcess, token: str) -> AsyncIterator[Bystander]:
        async with sse(server, self.path, params=self.params, headers=bearer(token)) as stream:

            class Watch:
                async def receives(self) -> None:
                    count = len(stream.events)
                    await emit_quote(server)
                    await publish_order(server, token)
                    events = await stream.wait_for(count + 2)
                    assert {e.event for e in events[count:]} == {"/stocks/AAPL", "/orders"}

            yield Watch()

    async def refuse(self, server: ServerProcess, token: str | None, case: str) -> Observed:
        return await refused_http(
            server, "GET", self.path, params=self.params, headers=bearer(token)
        )

    async def serve(self, server: ServerProcess, token: str, tokens: Tokens) -> None:
        async with sse(server, self.path, params=self.params, headers=bearer(token)) as stream:
            await emit_quote(server)
            await publish_order(server, tokens.full)
            events = await stream.wait_for(2)
        assert [event.event for event in events] == ["/stocks/AAPL", "/orders"]

    async def expire(self, server: ServerProcess, token: str) -> None:
        async with sse(server, self.path, params=self.params, headers=bearer(token)) as stream:
            await asyncio.wait_for(stream.ended.wait(), 5)
        assert [event.event for event in stream.events] == ["close"]
        assert json.loads(stream.events[0].data) == EXPIRED_CLOSE
        assert time.time() >= claims(token)["exp"]


class HTTPPublish:
    needed = ("orders:write",)
    missing = "orders:write"
    carries = "http"
    path = "/streams/publish/orders"

    @asynccontextmanager
    async def bystander(self, server: ServerProcess, token: str) -> AsyncIterator[Bystander]:
        async with sse(server, "/streams/sse/orders", params=query(token)) as stream:

            class Watch:
                async def receives(self) -> None:
                    answer = await publish_order(server, token, "AFTER")
                    count = len(stream.events)
                    while answer.json()["id"] not in {event.id for event in stream.events}:
                        count += 1
                        await stream.wait_for(count)
                    # A refused publish never reached anyone.
                    assert "REFUSED" not in {order["symbol"] for order in stream.data()}

            yield Watch()

    async def refuse(self, server: ServerProcess, token: str | None, case: str) -> Observed:
        async with httpx.AsyncClient(base_url=server.url) as http:
            answer = await http.post(
                self.path, json={"symbol": "REFUSED", "quantity": 1}, headers=bearer(token)
            )
        return Observed(
            answer.status_code, answer.json()["detail"], answer.headers.get("www-authenticate")
        )

    async def serve(self, server: ServerProcess, token: str, tokens: Tokens) -> None:
        answer = await publish_order(server, token)
        assert answer.status_code == 202 and answer.json()["published"] is True

    async def expire(self, server: ServerProcess, token: str) -> None:
        assert (await publish_order(server, token)).status_code == 202
        wait = claims(token)["exp"] - time.time() + 0.3
        await asyncio.sleep(max(0.0, wait))
        observed = await self.refuse(server, token, "expired")
        assert observed == shaped(self, expected("expired", (), ""))


class WebSubSubscribe:
    """Subscription requests to the hub for ``/stocks/AAPL``, with the token in the header.

    Bad credentials get 401 at once and the hub calls nobody. A known client without the scope
    gets 202 and its callback a ``hub.mode=denied`` request with the reason (WebSub 5.1.2:
    the answer must not depend on validation). A subscription ends with its token: the lease
    the hub grants never outlasts it.
    """

    needed = ("stocks:read",)
    missing = "stocks:read"
    carries = "websub"
    address = "/stocks/AAPL"

    def topic_url(self, server: ServerProcess) -> str:
        return f"{server.url}/streams/websub{self.address}"

    async def request(
        self, server: ServerProcess, token: str | None, callback: str, mode: str = "subscribe"
    ) -> httpx.Response:
        form = {"hub.mode": mode, "hub.topic": self.topic_url(server), "hub.callback": callback}
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            return await http.post("/streams/websub/hub", data=form, headers=bearer(token))

    async def subscribe(
        self, server: ServerProcess, token: str, subscriber: Subscriber
    ) -> dict[str, str]:
        """Subscribe ``subscriber`` and wait for its first delivery; the verification query."""
        answer = await self.request(server, token, subscriber.url("/quotes"))
        assert answer.status_code == 202, answer.text
        await subscriber.wait_until(lambda: subscriber.verifications() != [], what="verification")
        await delivered(server, subscriber)
        return subscriber.verifications()[0].query

    @asynccontextmanager
    async def bystander(self, server: ServerProcess, token: str) -> AsyncIterator[Bystander]:
        async with Subscriber() as subscriber:
            await self.subscribe(server, token, subscriber)

            class Watch:
                async def receives(self) -> None:
                    await delivered(server, subscriber)

            yield Watch()
            answer = await self.request(server, token, subscriber.url("/quotes"), "unsubscribe")
            assert answer.status_code == 202, answer.text
            modes = lambda: [r.query["hub.mode"] for r in subscriber.verifications()]  # noqa: E731
            await subscriber.wait_until(lambda: "unsubscribe" in modes(), what="unsubscription")

    async def refuse(self, server: ServerProcess, token: str | None, case: str) -> Observed:
        async with Subscriber() as subscriber:
            answer = await self.request(server, token, subscriber.url("/refused"))
            challenge = answer.headers.get("www-authenticate")
            if answer.status_code != 202:
                await asyncio.sleep(0.3)
                assert subscriber.requests == [], "a refused request makes the hub call nobody"
                return Observed(answer.status_code, answer.text.strip(), challenge)
            await subscriber.wait_until(lambda: subscriber.denials() != [], what="the denial")
            denial = subscriber.denials()[0].query
            assert denial["hub.topic"] == self.topic_url(server)
            await emit_quote(server)
            await asyncio.sleep(0.3)
            assert subscriber.verifications() == [] and subscriber.deliveries() == []
        return Observed(answer.status_code, denial["hub.reason"], challenge)

    async def serve(self, server: ServerProcess, token: str, tokens: Tokens) -> None:
        async with Subscriber() as subscriber:
            asked_at = time.time()
            verification = await self.subscribe(server, token, subscriber)
            delivery = await delivered(server, subscriber)
        assert json.loads(delivery.body) == QUOTE
        # The default lease (days) is cut to the token's remaining hour: at most what remained
        # when the request was made (the hub rounds down), and not much less.
        lease = int(verification["hub.lease_seconds"])
        assert 0 <= claims(token)["exp"] - asked_at - lease < 60

    async def expire(self, server: ServerProcess, token: str) -> None:
        async with Subscriber() as subscriber:
            verification = await self.subscribe(server, token, subscriber)
            assert int(verification["hub.lease_seconds"]) <= SHORT_LIFETIME
            await asyncio.sleep(max(0.0, claims(token)["exp"] - time.time() + 0.3))
            assert await delivery_of(subscriber, await emit_quote(server), within=1) is None


async def delivered(server: ServerProcess, subscriber: Subscriber, timeout: float = 10) -> Received:
    """Emit quotes until one reaches the subscriber's callback; that delivery."""
    deadline = time.monotonic() + timeout
    while True:
        found = await delivery_of(subscriber, await emit_quote(server), within=0.5)
        if found is not None:
            return found
        assert time.monotonic() < deadline, f"no quote reached the subscriber in {timeout} s"


async def delivery_of(subscriber: Subscriber, event_id: str, within: float) -> Received | None:
    """The delivery of event ``event_id`` if it arrives ``within`` seconds, else None."""
    with contextlib.suppress(AssertionError):
        await subscriber.wait_until(lambda: event_id in delivery_ids(subscriber), within)
    return delivery_ids(subscriber).get(event_id)


def delivery_ids(subscriber: Subscriber) -> dict[str, Received]:
    return {d.headers["x-hub-event-id"]: d for d in subscriber.deliveries()}


ROWS: dict[str, Row] = {
    "ws_one_topic": WebSocketOneTopic(),
    "ws_multiplexed": WebSocketMultiplexed(),
    "sse_one_topic": SSEOneTopic(),
    "sse_multi_topic": SSEMultiTopic(),
    "http_publish": HTTPPublish(),
    "websub_subscribe": WebSubSubscribe(),
}


def shaped(row: Row, observed: Observed) -> Observed:
    """The expected answer, with only the fields the row's transport carries."""
    if row.carries == "http":
        return dataclasses.replace(observed, error=None)
    if row.carries == "websub" and observed.status == 403:
        # A known client without the scope: accepted, then denied at its callback.
        return Observed(202, observed.detail)
    if row.carries == "websub":
        return dataclasses.replace(observed, error=None)
    return dataclasses.replace(observed, www_authenticate=None)


# -- the matrix -----------------------------------------------------------------------------


@pytest.mark.parametrize("case", REFUSALS)
@pytest.mark.parametrize("name", list(ROWS))
async def test_refused(name: str, case: str, secure_server: ServerProcess, tokens: Tokens) -> None:
    row = ROWS[name]
    token = tokens.for_case(case, row.missing)
    async with row.bystander(secure_server, tokens.full) as bystander:
        observed = await row.refuse(secure_server, token, case)
        assert observed == shaped(row, expected(case, row.needed, row.missing))
        await bystander.receives()


@pytest.mark.parametrize("name", list(ROWS))
async def test_all_scopes(name: str, secure_server: ServerProcess, tokens: Tokens) -> None:
    row = ROWS[name]
    async with row.bystander(secure_server, tokens.full) as bystander:
        await row.serve(secure_server, tokens.full, tokens)
        await bystander.receives()


@pytest.mark.parametrize("name", list(ROWS))
async def test_expiring_mid_stream(name: str, secure_server: ServerProcess, tokens: Tokens) -> None:
    row = ROWS[name]
    short = tokens.account.login(backend="short")
    assert claims(short)["exp"] - time.time() <= SHORT_LIFETIME + 0.5
    async with row.bystander(secure_server, tokens.full) as bystander:
        await row.expire(secure_server, short)
        await bystander.receives()
