import asyncio
import hashlib
import hmac
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from fastapi import FastAPI, Request, Response
from pydantic import BaseModel

from fastapi_streaming import StreamingAPI, WebSubSettings

# Every test here is a coroutine run by pytest-asyncio, whatever the project's asyncio_mode.
pytestmark = pytest.mark.asyncio


class Quote(BaseModel):
    symbol: str
    price: float


def create_app(websub: WebSubSettings) -> FastAPI:
    """The app under test, built by a function so tests choose its WebSub settings."""
    streaming = StreamingAPI(websub=websub)

    @streaming.subscribe("/stocks/{symbol}")
    async def quotes(event: Quote, symbol: str) -> Quote:
        return event

    @streaming.publish("/stocks/{symbol}")
    async def publish_quote(event: Quote, symbol: str) -> Quote:
        return event

    app = FastAPI()
    streaming.init_app(app)
    return app


@asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Run ``app`` with uvicorn on a free port of 127.0.0.1; yield its base URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn has no event to wait on
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


class Receiver:
    """A real subscriber: confirms verifications, keeps deliveries, fails on demand."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        self.arrived = asyncio.Event()
        self.failures_left = 0
        self.app = FastAPI()
        self.app.get("/hook")(self.verify)
        self.app.post("/hook")(self.deliver)

    async def verify(self, request: Request) -> Response:
        return Response(request.query_params["hub.challenge"], media_type="text/plain")

    async def deliver(self, request: Request) -> Response:
        self.deliveries.append((dict(request.headers), await request.body()))
        self.arrived.set()
        if self.failures_left:
            self.failures_left -= 1
            return Response(status_code=503)
        return Response(status_code=204)

    async def wait_for(self, count: int) -> None:
        async def enough() -> None:
            while len(self.deliveries) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(enough(), timeout=10)


@pytest_asyncio.fixture
async def hub(tmp_path: Path) -> AsyncIterator[str]:
    settings = WebSubSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'websub.sqlite3'}",
        allow_networks=("127.0.0.1/32",),  # the receiver runs on this machine
        retry_base=0.05,  # retry within the test's patience
    )
    async with serve(create_app(settings)) as url:
        yield url


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    receiver = Receiver()
    async with serve(receiver.app) as url:
        yield receiver, url + "/hook"


async def subscribe(hub: str, callback: str, secret: str) -> None:
    async with httpx.AsyncClient(base_url=hub) as http:
        topic = (await http.get("/streams/websub/stocks/AAPL")).links["self"]["url"]
        answer = await http.post(
            "/streams/websub/hub",
            data={
                "hub.mode": "subscribe",
                "hub.topic": topic,
                "hub.callback": callback,
                "hub.secret": secret,
            },
        )
        assert answer.status_code == 202
        await asyncio.sleep(0.5)  # verification happens right after the 202


async def test_quotes_arrive_signed(hub: str, receiver: tuple[Receiver, str]) -> None:
    inbox, callback = receiver
    await subscribe(hub, callback, secret="test-secret")
    async with httpx.AsyncClient(base_url=hub) as http:
        await http.post("/streams/publish/stocks/AAPL", json={"symbol": "AAPL", "price": 1.5})
    await inbox.wait_for(1)
    headers, body = inbox.deliveries[0]
    assert Quote.model_validate_json(body) == Quote(symbol="AAPL", price=1.5)
    digest = hmac.new(b"test-secret", body, hashlib.sha256).hexdigest()
    assert headers["x-hub-signature"] == f"sha256={digest}"


async def test_failed_deliveries_are_retried(hub: str, receiver: tuple[Receiver, str]) -> None:
    inbox, callback = receiver
    inbox.failures_left = 2
    await subscribe(hub, callback, secret="test-secret")
    async with httpx.AsyncClient(base_url=hub) as http:
        await http.post("/streams/publish/stocks/AAPL", json={"symbol": "AAPL", "price": 2.0})
    await inbox.wait_for(3)
    event_ids = {headers["x-hub-event-id"] for headers, _ in inbox.deliveries}
    assert len(event_ids) == 1  # three attempts at one event: drop repeats by this id
