"""Stopping the server ends every stream cleanly and leaves nothing running."""

from __future__ import annotations

import asyncio
import signal

import pytest
from websockets.exceptions import ConnectionClosed

from tests.support.clients import send_json, sse_stream, websocket
from tests.support.server import ServerProcess


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_shutdown_ends_streams_and_closes_sockets_with_1001(
    broker_url: str, channel_prefix: str, sig: signal.Signals
) -> None:
    env = {"BROKER_URL": broker_url, "CHANNEL_PREFIX": channel_prefix}
    server = ServerProcess("tests.apps.core_app:app", env=env).start()
    try:
        async with (
            sse_stream(server.url, "/streams/sse/alerts") as sse,
            websocket(server.ws_url + "/streams/ws/alerts") as one,
            websocket(server.ws_url + "/streams/ws") as many,
        ):
            await send_json(many, {"type": "subscribe", "id": 1, "topic": "/alerts"})
            await many.recv()
            loop = asyncio.get_running_loop()
            exit_code = loop.run_in_executor(None, server.stop, sig, 15)

            await asyncio.wait_for(sse.ended.wait(), 10)
            assert sse.events[-1].event == "close"
            assert '"reason":"shutdown"' in sse.events[-1].data
            for ws in (one, many):
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 10)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
            # uvicorn re-raises the signal it handled once it has shut down gracefully.
            assert await exit_code in (0, -sig)
    finally:
        server.stop()
    output = server.output()
    assert "Finished server process" in output
    for trouble in ("Traceback", "Task was destroyed", "ERROR", "Waiting for connections"):
        assert trouble not in output, output
