"""Security beyond the matrix: logs, login scopes, revoked users, require_auth, sockets."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support.auth import ALL_SCOPES, Account, Tokens, claims
from tests.support.clients import receive_json, send_json
from tests.support.server import ServerProcess


async def test_query_tokens_never_reach_the_access_log(
    secure_server: ServerProcess, tokens: Tokens
) -> None:
    base, ws = secure_server.url, secure_server.ws_url
    async with httpx.AsyncClient(base_url=base) as http:
        for token in (tokens.lacking["stocks:read"], tokens.expired):  # refused: 403, 401
            answer = await http.get("/streams/sse/stocks/AAPL", params={"access_token": token})
            assert answer.status_code in (401, 403)
        async with http.stream(
            "GET", "/streams/sse/stocks/AAPL", params={"access_token": tokens.full}
        ) as accepted:
            assert accepted.status_code == 200
    async with connect(f"{ws}/streams/ws/stocks/AAPL?access_token={tokens.full}"):
        pass
    with pytest.raises(InvalidStatus):
        async with connect(f"{ws}/streams/ws/stocks/AAPL?access_token={tokens.foreign}"):
            pass
    async with connect(f"{ws}/streams/ws?topic=x&access_token={tokens.full}&other=1"):
        pass

    await _wait_for_log(secure_server, '"WebSocket /streams/ws?topic=x&access_token=[redacted]')
    log = secure_server.output()
    for token in tokens.all():
        assert token not in log
        assert token.split(".")[2] not in log  # not even the signature
    lines = [line for line in log.splitlines() if "access_token" in line]
    assert all("access_token=[redacted]" in line for line in lines)
    assert '"GET /streams/sse/stocks/AAPL?access_token=[redacted] HTTP/1.1" 200' in log
    assert '"GET /streams/sse/stocks/AAPL?access_token=[redacted] HTTP/1.1" 403' in log
    assert '"WebSocket /streams/ws/stocks/AAPL?access_token=[redacted]" [accepted]' in log
    assert '"WebSocket /streams/ws/stocks/AAPL?access_token=[redacted]" 401' in log
    assert "access_token=[redacted]&other=1" in log


@pytest.mark.parametrize("name", ["access%5Ftoken", "%61ccess_token", "access%5ftoken"])
async def test_percent_encoded_token_names_are_redacted_too(
    secure_server: ServerProcess, tokens: Tokens, name: str
) -> None:
    """The server decodes the parameter's name, so ``access%5Ftoken`` authenticates: the log
    must hide it as well as the plain spelling."""
    base, ws = secure_server.url, secure_server.ws_url
    url = f"/streams/sse/stocks/AAPL?{name}={tokens.full}"
    async with httpx.AsyncClient(base_url=base) as http, http.stream("GET", url) as accepted:
        assert accepted.status_code == 200, "the encoded name authenticates"
    async with connect(f"{ws}/streams/ws/stocks/AAPL?{name}={tokens.full}"):
        pass
    await _wait_for_log(secure_server, f'"WebSocket /streams/ws/stocks/AAPL?{name}=[redacted]"')
    await _wait_for_log(secure_server, f'"GET /streams/sse/stocks/AAPL?{name}=[redacted] HTTP')
    log = secure_server.output()
    assert tokens.full not in log
    assert tokens.full.split(".")[2] not in log


async def _wait_for_log(server: ServerProcess, text: str) -> None:
    import asyncio

    for _ in range(50):
        if text in server.output():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{text!r} not in the server's log:\n{server.output()}")


async def test_token_in_header_and_query_at_once_is_a_bad_request(
    secure_server: ServerProcess, tokens: Tokens
) -> None:
    async with httpx.AsyncClient(base_url=secure_server.url) as http:
        answer = await http.get(
            "/streams/sse/stocks/AAPL",
            params={"access_token": tokens.full},
            headers={"Authorization": f"Bearer {tokens.full}"},
        )
    assert answer.status_code == 400
    detail = (
        "Send the access token in the Authorization header or the access_token query "
        "parameter, not both."
    )
    assert answer.json() == {"detail": detail}
    assert answer.headers["www-authenticate"] == (
        f'Bearer error="invalid_request", error_description="{detail}"'
    )


def test_login_issues_the_requested_scopes_and_refuses_others(secure_server: ServerProcess) -> None:
    account = Account(secure_server.url)
    assert claims(account.login())["scope"].split() == sorted(ALL_SCOPES)
    narrow = claims(account.login(("orders:read",)))
    assert narrow["scope"] == "orders:read"
    assert narrow["aud"] == ["fastapi-users:auth"]
    with httpx.Client(base_url=secure_server.url) as http:
        answer = http.post(
            "/auth/jwt/login",
            data={"username": account.email, "password": account.password, "scope": "admin"},
        )
    assert answer.status_code == 400
    assert answer.json()["detail"] == {
        "code": "invalid_scope",
        "reason": "The user is not granted the scopes admin.",
    }


async def test_a_deactivated_user_is_refused_on_the_next_connection(
    secure_server: ServerProcess, users_database: Path
) -> None:
    account = Account(secure_server.url)
    token = account.login()
    path = "/streams/sse/stocks/AAPL"
    async with httpx.AsyncClient(base_url=secure_server.url) as http:
        async with http.stream("GET", path, params={"access_token": token}) as before:
            assert before.status_code == 200
        with sqlite3.connect(users_database) as database:
            database.execute('UPDATE "user" SET is_active = 0 WHERE email = ?', (account.email,))
        after = await http.get(path, params={"access_token": token})
    assert after.status_code == 401
    assert after.json() == {"detail": "The access token's user is inactive."}


async def test_a_revoked_scope_is_refused_even_with_a_token_that_has_it(
    secure_server: ServerProcess, users_database: Path
) -> None:
    account = Account(secure_server.url)
    token = account.login()
    with sqlite3.connect(users_database) as database:
        database.execute(
            'UPDATE "user" SET scopes = ? WHERE email = ?', ("orders:read", account.email)
        )
    async with httpx.AsyncClient(base_url=secure_server.url) as http:
        answer = await http.get("/streams/sse/stocks/AAPL", params={"access_token": token})
    assert answer.status_code == 403
    assert "lacks the scopes stocks:read" in answer.json()["detail"]


async def test_multiplexed_publish_without_scope_is_an_error_message_only(
    secure_server: ServerProcess, tokens: Tokens
) -> None:
    headers = {"Authorization": f"Bearer {tokens.lacking['orders:write']}"}
    async with connect(secure_server.ws_url + "/streams/ws", additional_headers=headers) as ws:
        await send_json(ws, {"type": "subscribe", "id": 1, "topic": "/orders"})
        assert await receive_json(ws) == {"type": "ack", "id": 1}
        order = {"symbol": "AAPL", "quantity": 1}
        await send_json(ws, {"type": "publish", "id": 2, "topic": "/orders", "data": order})
        error = await receive_json(ws)
        assert error == {
            "type": "error",
            "id": 2,
            "code": 403,
            "error": "insufficient_scope",
            "detail": "The access token lacks the scopes orders:write; "
            "this request needs orders:write.",
        }
        async with httpx.AsyncClient(base_url=secure_server.url) as http:
            placed = await http.post(
                "/streams/publish/orders",
                json={"symbol": "MSFT", "quantity": 2},
                headers={"Authorization": f"Bearer {tokens.full}"},
            )
        event = await receive_json(ws)
    assert event["id"] == placed.json()["id"] and event["data"]["symbol"] == "MSFT"


async def test_require_auth_closes_public_topics_to_anonymous_clients(
    users_database: Path,
) -> None:
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{users_database}", "REQUIRE_AUTH": "1"}
    with ServerProcess("tests.apps.secure_app:app", env=env) as server:
        token = Account(server.url).login(("orders:read",))
        async with httpx.AsyncClient(base_url=server.url) as http:
            anonymous = await http.get("/streams/sse/news")
            async with http.stream(
                "GET", "/streams/sse/news", params={"access_token": token}
            ) as known:
                assert known.status_code == 200
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == "Bearer"
        with pytest.raises(InvalidStatus) as refused:
            async with connect(server.ws_url + "/streams/ws"):
                pass
        assert refused.value.response.status_code == 401
        async with connect(f"{server.ws_url}/streams/ws?access_token={token}") as ws:
            await send_json(ws, {"type": "subscribe", "id": 1, "topic": "/news"})
            assert await receive_json(ws) == {"type": "ack", "id": 1}
