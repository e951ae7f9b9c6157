"""APIs created from AsyncAPI documents, over a real server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.clients import post, receive_json, send_json, websocket
from tests.support.server import ServerProcess


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess("tests.apps.imported_app:app") as running:
        yield running


async def test_a_fixed_address_is_not_shadowed_by_a_template_declared_before_it(
    server: ServerProcess,
) -> None:
    # The server receives on rpc_queue although {queue} (send only) comes first.
    accepted = await post(server.url, "/server/publish/rpc_queue", json={"numbers": [4, 3]})
    assert accepted.status_code == 202, accepted.text
    # The client only sends on rpc_queue: clients cannot publish to it.
    refused = await post(server.url, "/client/publish/rpc_queue", json={"numbers": [4, 3]})
    assert refused.status_code == 405, refused.text
    assert "subscribe" in refused.text


async def test_a_document_whose_servers_require_credentials_gets_an_api_that_does(
    server: ServerProcess,
) -> None:
    response = await post(server.url, "/secure/publish/light/measured", json={"lumens": 3})
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_each_request_on_one_socket_gets_the_reply_its_operation_declares(
    server: ServerProcess,
) -> None:
    async with websocket(f"{server.ws_url}/kraken/ws") as ws:
        for request_id, event in (("a", "ping"), ("b", "subscribe")):
            data = {"event": event, "reqid": 7}
            await send_json(ws, {"type": "publish", "id": request_id, "topic": "/", "data": data})
        received = [await receive_json(ws) for _ in range(4)]
        await send_json(ws, {"type": "publish", "id": "c", "topic": "/", "data": {"event": "x"}})
        error = await receive_json(ws)
    replies = {m["id"]: m["data"] for m in received if m["type"] == "reply"}
    assert replies == {
        "a": {"event": "pong", "reqid": 7},
        "b": {"event": "subscriptionStatus", "reqid": 7},
    }
    assert error["type"] == "error" and error["code"] == 422 and error["id"] == "c"
