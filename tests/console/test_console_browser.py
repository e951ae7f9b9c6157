"""The console in Chromium: live figures over SSE, a disconnect and WebSub actions by click.

A real uvicorn server runs docs_src/console/app.py; live clients (an SSE stream, a WebSocket,
a WebSub subscriber and a publisher) run in a thread of their own, since Playwright's sync API
owns the test's thread. The screenshot is kept at ``build/console.png`` (and in the test's
tmp path).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.console.support import SECRET, bearer, token
from tests.support.browser import chromium_page
from tests.support.clients import sse_stream, websocket
from tests.support.server import ROOT, ServerProcess
from tests.support.websub import Subscriber

pytestmark = pytest.mark.browser

SCREENSHOT = ROOT / "build" / "console.png"


class LiveClients:
    """Clients that keep the console busy, on an event loop in a background thread."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.stop_event: asyncio.Event | None = None
        self.socket_closed: Future[int] = Future()
        self.subscribed: Future[None] = Future()
        self.deliveries = 0
        self._main: Future[None] | None = None

    def __enter__(self) -> LiveClients:
        self.thread.start()
        self._main = asyncio.run_coroutine_threadsafe(self._run(), self.loop)
        self.subscribed.result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.stop_event is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        assert self._main is not None
        self._main.result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    async def _run(self) -> None:
        self.stop_event = asyncio.Event()
        url, ws_url = self.server.url, self.server.ws_url
        async with (
            Subscriber() as subscriber,
            sse_stream(url, "/streams/sse/rooms/1", access_token=token("bob")),
            websocket(f"{ws_url}/streams/ws/rooms/2", additional_headers=bearer("mallory")) as ws,
            httpx.AsyncClient(base_url=url, timeout=10) as http,
        ):
            answer = await http.post(
                "/streams/websub/hub",
                data={
                    "hub.mode": "subscribe",
                    "hub.topic": f"{url}/streams/websub/rooms/1",
                    "hub.callback": subscriber.url("/hook"),
                },
                headers=bearer("hooks"),
            )
            assert answer.status_code == 202, answer.text
            await subscriber.wait_until(lambda: bool(subscriber.verifications("/hook")))
            self.subscribed.set_result(None)
            watcher = asyncio.create_task(self._watch(ws))
            while not self.stop_event.is_set():
                await http.post("/streams/publish/rooms/1", json={"n": 1}, headers=bearer("alice"))
                self.deliveries = len(subscriber.deliveries("/hook"))
                try:
                    await asyncio.wait_for(self.stop_event.wait(), 0.2)
                except asyncio.TimeoutError:
                    pass
            watcher.cancel()

    async def _watch(self, ws: Any) -> None:
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd is not None else 1006
            self.socket_closed.set_result(code)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    env = {
        "JWT_SECRET": SECRET,
        "WEBSUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/websub.db",
    }
    with ServerProcess("docs_src.console.app:app", env=env) as running:
        yield running


def cell(page: Any, table: str, key: str, column: int) -> str:
    text: str = page.inner_text(f"#{table} tr[data-key='{key}'] td:nth-child({column})")
    return text


def test_an_admin_watches_and_acts_in_the_console(server: ServerProcess, tmp_path: Path) -> None:
    with chromium_page(1400, 1100) as page, LiveClients(server) as clients:
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        admin = token("operator", "streams:admin")
        page.goto(f"{server.url}/streams/console?access_token={admin}")
        page.wait_for_function("document.getElementById('status').textContent === 'live'")
        topic = "#topics tr[data-key='/rooms/{room}']"
        page.wait_for_selector(topic)
        page.wait_for_function(
            "document.querySelector(\"#topics tr[data-key='/rooms/{room}'] td:nth-child(2)\")"
            ".textContent === '3'"  # bob's stream, mallory's socket, the WebSub hub's intake
        )
        page.wait_for_selector("#consumers tr[data-key='bob']")
        before = int(cell(page, "consumers", "bob", 4))
        page.wait_for_function(
            "Number(document.querySelector(\"#consumers tr[data-key='bob'] td:nth-child(4)\")"
            f".textContent) > {before}",
            timeout=20_000,
        )
        assert float(cell(page, "topics", "/rooms/{room}", 4)) > 0  # delivered per second
        assert "sse 1" in page.inner_text("#transports")
        assert "websocket 1" in page.inner_text("#transports")

        # Disconnect mallory: her socket closes with 1008.
        page.click("#consumers tr[data-key='mallory'] button[data-action='disconnect']")
        assert clients.socket_closed.result(15) == 1008
        page.wait_for_function(
            "document.getElementById('message').textContent === 'disconnect mallory: done'"
        )

        # Pause the WebSub subscription, then delete it.
        row = "#websub tbody tr"
        page.wait_for_selector(row)
        page.click(f"{row} button[data-action='pause']")
        page.wait_for_selector(f"{row} td.state-paused")
        page.wait_for_selector(f"{row} button[data-action='resume']")
        page.screenshot(path=str(tmp_path / "console.png"), full_page=True)
        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        paused_at = clients.deliveries
        page.click(f"{row} button[data-action='delete']")
        page.wait_for_function("document.querySelectorAll('#websub tbody tr').length === 0")
    assert paused_at >= 1  # it was delivered to before the pause
    assert (tmp_path / "console.png").stat().st_size > 10_000
    assert all(url.startswith(server.url) for url in requested), requested
