"""Under plain uvicorn (not `fastapi-streaming run`): shutdown ends streams at once, and a
refused WebSocket is not logged as an error."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support.clients import sse_stream
from tests.support.server import ROOT, free_port


class PlainUvicorn:
    """``python -m uvicorn tests.apps.core_app:app`` in a child process, stopped by its PID."""

    def __init__(self, *options: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        handle, name = tempfile.mkstemp(prefix="uvicorn-", suffix=".log")
        os.close(handle)
        self.log = Path(name)
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "uvicorn", "tests.apps.core_app:app"),
                    *("--host", "127.0.0.1", "--port", str(self.port), *options),
                ],
                cwd=ROOT,
                env={**os.environ, "CHANNEL_PREFIX": f"plain{self.port}."},
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 20
        # uvicorn binds its socket after the app's startup: "running on" says it listens.
        while "Uvicorn running on" not in self.output():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"uvicorn did not start:\n{self.output()}")
            time.sleep(0.05)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


async def test_stopping_plain_uvicorn_ends_open_streams_at_once() -> None:
    server = PlainUvicorn("--timeout-graceful-shutdown", "30")
    try:
        async with sse_stream(server.url, "/streams/sse/alerts") as sse:
            started = time.monotonic()
            server.process.send_signal(signal.SIGINT)
            await asyncio.wait_for(sse.ended.wait(), 10)
            await asyncio.to_thread(server.process.wait, 20)
            took = time.monotonic() - started
        assert sse.events[-1].event == "close" and '"reason":"shutdown"' in sse.events[-1].data
    finally:
        server.kill()
    output = server.output()
    assert took < 15, f"waited {took:.1f}s: the graceful timeout, not the streams' end"
    for trouble in ("Traceback", "Cancel", "timeout graceful shutdown exceeded"):
        assert trouble not in output, output


async def test_a_refused_websocket_is_not_logged_as_an_error() -> None:
    server = PlainUvicorn()
    try:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(server.url.replace("http", "ws") + "/streams/ws/nowhere"):
                pass
        assert refused.value.response.status_code == 404
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/streams/health")).status_code == 200  # logged after it
    finally:
        server.process.send_signal(signal.SIGINT)
        await asyncio.to_thread(server.process.wait, 20)
        server.kill()
    output = server.output()
    assert '"WebSocket /streams/ws/nowhere" 404' in output
    assert "ERROR" not in output and "without completing handshake" not in output, output


async def test_stopping_another_server_in_the_process_leaves_these_streams_alone() -> None:
    """An app and a webhook receiver often share a test process: stopping the receiver's
    uvicorn server must not end the app's streams."""
    from fastapi import FastAPI

    from docs_src.getting_started.app import app
    from tests.support.websub import running_app

    async with running_app(app) as base:
        async with sse_stream(base, "/streams/sse/stocks/AAPL") as sse:
            async with running_app(FastAPI()):
                pass  # started and stopped while the stream is open
            async with httpx.AsyncClient(base_url=base) as http:
                quote = {"symbol": "AAPL", "price": 1.5}
                await http.post("/streams/publish/stocks/AAPL", json=quote)
            await asyncio.wait_for(sse.arrived.wait(), 10)
            assert not sse.ended.is_set()
    assert sse.events[0].data == '{"symbol":"AAPL","price":1.5}'
