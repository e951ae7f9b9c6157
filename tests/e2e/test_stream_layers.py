"""Stream requests skip FastAPI's per-request layers when the app has none of its own.

A stream's request lasts as long as the stream, and each layer keeps a frame alive that long
(see ``fastapi_streaming.shortcut``). These tests read, from a real server, which layers a
stream request went through, and check that an app's own middleware still sees every stream.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest
import websockets
from httpx_sse import aconnect_sse

from tests.support.server import ServerProcess

FRAMEWORK_LAYERS = (
    "starlette.middleware.errors",
    "starlette.middleware.exceptions",
    "fastapi.middleware.asyncexitstack",
    "starlette.routing",
)


@pytest.fixture
def plain_app() -> Iterator[ServerProcess]:
    with ServerProcess("tests.apps.layers_app:app") as server:
        yield server


@pytest.fixture
def app_with_middleware() -> Iterator[ServerProcess]:
    with ServerProcess("tests.apps.layers_app:app", env={"WITH_MIDDLEWARE": "1"}) as server:
        yield server


def layers_of(server: ServerProcess, path: str, method: str = "GET") -> list[str]:
    """The modules on the stack below the authenticator of a request to ``path``."""
    answer = httpx.request(
        method, server.url + path, headers={"x-show-layers": "1"}, json={}, timeout=10
    )
    assert answer.status_code == 418, answer.text
    assert answer.headers["x-layers"] == "1"  # the exception's headers are kept
    layers: list[str] = answer.json()["detail"]["layers"]
    return layers


@pytest.mark.parametrize("path", ["/streams/sse/ticks", "/streams/sse?topic=/ticks"])
def test_a_stream_skips_the_framework_layers_of_an_app_without_middleware(
    plain_app: ServerProcess, path: str
) -> None:
    layers = layers_of(plain_app, path)
    assert "fastapi_streaming.transports.sse" in layers
    assert "starlette.applications" in layers  # the app was called...
    assert not [layer for layer in layers if layer in FRAMEWORK_LAYERS]  # ...and went no further


def test_other_routes_still_go_through_the_whole_app(plain_app: ServerProcess) -> None:
    layers = layers_of(plain_app, "/streams/publish/ticks", "POST")  # a plain route
    assert all(layer in layers for layer in FRAMEWORK_LAYERS)
    published = httpx.post(plain_app.url + "/streams/publish/ticks", json={"n": 1}, timeout=10)
    assert published.status_code == 202


def test_an_app_with_middleware_of_its_own_keeps_every_stream_going_through_it(
    app_with_middleware: ServerProcess,
) -> None:
    layers = layers_of(app_with_middleware, "/streams/sse/ticks")
    assert "starlette.middleware.cors" in layers
    assert all(layer in layers for layer in FRAMEWORK_LAYERS)
    answer = httpx.get(
        app_with_middleware.url + "/streams/sse/ticks",
        headers={"origin": "https://example.test", "x-show-layers": "1"},
        timeout=10,
    )
    assert answer.headers["access-control-allow-origin"] == "https://example.test"


async def test_streams_served_ahead_of_the_app_deliver_events(plain_app: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=plain_app.url, timeout=10) as client:
        async with aconnect_sse(client, "GET", "/streams/sse/ticks") as source:
            async with websockets.connect(plain_app.ws_url + "/streams/ws/ticks") as socket:
                await asyncio.sleep(0.2)  # both subscribed
                published = await client.post("/streams/publish/ticks", json={"n": 7})
                assert published.status_code == 202
                async for sent in source.aiter_sse():
                    if sent.event != "ping":
                        assert '"n":7' in sent.data.replace(" ", "")
                        break
                assert '"n":7' in str(await asyncio.wait_for(socket.recv(), 10)).replace(" ", "")


@pytest.mark.parametrize("path", ["/streams/ws/ticks", "/streams/ws"])
async def test_an_authenticator_s_http_exception_denies_a_socket_with_its_status(
    plain_app: ServerProcess, path: str
) -> None:
    with pytest.raises(websockets.InvalidStatus) as denied:
        async with websockets.connect(
            plain_app.ws_url + path, additional_headers={"x-show-layers": "1"}
        ):
            pass
    assert denied.value.response.status_code == 418
    layers = json.loads(denied.value.response.body or b"{}")["detail"]["layers"]
    assert "fastapi_streaming.transports.websocket" in layers
    assert not [layer for layer in layers if layer in FRAMEWORK_LAYERS]
