"""The code of docs/security.md, run against a real server with a real JWKS endpoint."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.clients import sse_stream
from tests.support.server import ServerProcess

ISSUER = "https://login.example.test/"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def jwks_url() -> Iterator[str]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
    document = json.dumps({"keys": [{**jwk, "kid": "gateway-1", "use": "sig"}]}).encode()

    class Keys(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Keys)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


def gateway_token(scope: str, **claims: Any) -> str:
    payload = {
        "sub": "partner-42",
        "aud": "market-api",
        "iss": ISSUER,
        "exp": int(time.time()) + 300,
        "scope": scope,
        **claims,
    }
    return jwt.encode(payload, KEY, algorithm="RS256", headers={"kid": "gateway-1"})


async def test_gateway_tokens_publish_and_subscribe_by_scope(jwks_url: str) -> None:
    env = {"JWKS_URL": jwks_url, "TOKEN_ISSUER": ISSUER}
    with ServerProcess("docs_src.security.gateway:app", env=env) as server:
        reader = gateway_token("orders:read")
        writer = gateway_token("orders:write")
        async with (
            sse_stream(server.url, "/streams/sse/orders", access_token=reader) as orders,
            httpx.AsyncClient(base_url=server.url) as http,
        ):
            refused = await http.post(
                "/streams/publish/orders",
                json={"symbol": "AAPL", "quantity": 1},
                headers={"Authorization": f"Bearer {reader}"},
            )
            placed = await http.post(
                "/streams/publish/orders",
                json={"symbol": "AAPL", "quantity": 2},
                headers={"Authorization": f"Bearer {writer}"},
            )
            events = await orders.wait_for(1)
            other_issuer = await http.get(
                "/streams/sse/orders",
                params={"access_token": gateway_token("orders:read", iss="https://evil.test/")},
            )
    assert refused.status_code == 403
    assert placed.status_code == 202
    assert events[0].id == placed.json()["id"]
    assert json.loads(events[0].data) == {
        "symbol": "AAPL",
        "quantity": 2,
        "placed_by": "partner-42",
    }
    assert other_issuer.status_code == 401


async def test_scopes_for_one_address() -> None:
    secret = "a-secret-of-at-least-thirty-two-bytes-for-hs256"
    room_42 = jwt.encode(
        {"sub": "ann", "exp": int(time.time()) + 300, "scope": "rooms:42:read rooms:42:write"},
        secret,
        algorithm="HS256",
    )
    with ServerProcess("docs_src.security.rooms:app", env={"JWT_SECRET": secret}) as server:
        headers = {"Authorization": f"Bearer {room_42}"}
        async with (
            sse_stream(server.url, "/streams/sse/rooms/42", access_token=room_42) as room,
            httpx.AsyncClient(base_url=server.url) as http,
        ):
            own = await http.post("/streams/publish/rooms/42", json={"text": "hi"}, headers=headers)
            other = await http.post("/streams/publish/rooms/43", json={}, headers=headers)
            reading_other = await http.get("/streams/sse/rooms/43", headers=headers)
            await room.wait_for(1)
    assert own.status_code == 202
    assert other.status_code == 403
    assert reading_other.status_code == 403
    assert 'scope="rooms:43:read"' in reading_other.headers["WWW-Authenticate"]
    assert json.loads(room.events[0].data) == {"text": "hi"}
