"""Hostile input on the wire, generated: every answer is a documented one, never a 500, a
dropped socket or a traceback.

In process (Starlette's TestClient over the test app on ``memory://``), so hundreds of inputs
take a few seconds. The hostile inputs that broke the wire before (NaN, 5,000-digit path
parameters, deeply nested JSON) have a case each as well.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from fastapi_streaming import StreamingAPI
from fastapi_streaming.errors import StreamingError
from fastapi_streaming.replay import uuid7_millis
from tests.apps.core_app import app
from tests.fuzz.strategies import addresses, bodies, control_messages, json_values

PUBLISH_STATUSES = {202, 400, 404, 405, 413, 422}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as running:
        yield running


@pytest.fixture(autouse=True)
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Bad input is answered; it never makes the server log an error with a traceback."""
    with caplog.at_level(logging.ERROR):
        yield
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not logged, [r.getMessage() for r in logged]


def path_of(address: str) -> str:
    return quote(address, safe="/")


def check_publish_answer(status: int, body: bytes) -> None:
    assert status in PUBLISH_STATUSES, (status, body[:300])
    answer = json.loads(body)
    if status == 202:
        assert set(answer) == {"id", "topic", "published"}
    else:
        assert answer["detail"], answer


# -- HTTP publish --------------------------------------------------------------------------


@given(
    address=addresses,
    body=bodies,
    content_type=st.sampled_from([None, "application/json", "text/plain", "application/xml"]),
)
def test_any_publish_request_gets_a_documented_answer(
    client: TestClient, address: str, body: bytes, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    answer = client.post("/streams/publish" + path_of(address), content=body, headers=headers)
    check_publish_answer(answer.status_code, answer.content)


@given(price=st.floats(), symbol=st.text(max_size=20))
def test_only_standard_json_numbers_are_accepted(
    client: TestClient, price: float, symbol: str
) -> None:
    body = json.dumps({"symbol": symbol, "price": price}).encode()  # NaN, Infinity as Python writes
    answer = client.post("/streams/publish/stocks/FZ", content=body)
    accepted = math.isfinite(price) and price > 0
    assert answer.status_code == (202 if accepted else 422), answer.text


@pytest.mark.parametrize("body", [b'{"a":NaN}', b'{"a":Infinity}', b'{"a":-Infinity}'])
def test_non_standard_json_numbers_are_refused(client: TestClient, body: bytes) -> None:
    answer = client.post("/streams/publish/audit", content=body)
    assert answer.status_code == 422


def test_a_huge_integer_path_parameter_is_an_unknown_topic(client: TestClient) -> None:
    answer = client.post("/streams/publish/rooms/" + "9" * 5000, json={"text": "hi"})
    assert answer.status_code == 404


# -- topic addresses and their convertors --------------------------------------------------


def convertor_api() -> StreamingAPI:
    streaming = StreamingAPI(title="Convertors")
    for template in ("/s/{a}", "/i/{a:int}", "/f/{a:float}", "/p/{a:path}", "/u/{a:uuid}"):

        @streaming.subscribe(template)
        async def handler(event: dict[str, Any], a: Any) -> dict[str, Any]:
            return event

    return streaming


CONVERTORS = convertor_api()


@given(address=addresses | st.sampled_from(["/i/", "/f/1e400", "/f/nan", "/u/x", "/p/"]))
@example(address="/i/" + "1" * 4000)
def test_resolving_any_address_finds_a_topic_or_none(address: str) -> None:
    found = CONVERTORS.topics.resolve(address)
    if found is not None:
        topic, params = found
        assert topic.match(address) == params


def test_resolving_a_5000_digit_parameter_finds_no_topic() -> None:
    assert CONVERTORS.topics.resolve("/i/" + "1" * 5000) is None


# -- WebSocket control messages ------------------------------------------------------------


def receive_reply(ws: Any, request_id: Any) -> dict[str, Any]:
    """The ack or error answering ``request_id`` (skipping events the request may bring)."""
    for _ in range(10):
        message = ws.receive_json()
        if message.get("type") in ("ack", "error") and message.get("id") == request_id:
            return dict(message)
        if message.get("type") in ("ack", "error") and request_id is None and "id" not in message:
            return dict(message)
    raise AssertionError("no reply")


def check_alive(ws: Any) -> None:
    """The socket still answers: a valid subscribe is acknowledged."""
    ws.send_text(json.dumps({"type": "subscribe", "id": "alive?", "topic": "/alerts"}))
    for _ in range(20):
        message = ws.receive_json()
        if message.get("id") == "alive?":
            assert message["type"] == "ack", message
            return
    raise AssertionError("the socket did not answer")


@given(
    message=control_messages.map(lambda m: json.dumps(m))
    | json_values.map(json.dumps)
    | st.text(max_size=200)
)
def test_any_control_message_gets_an_ack_or_error_and_the_socket_stays(
    client: TestClient, message: str
) -> None:
    with client.websocket_connect("/streams/ws") as ws:
        ws.send_text(message)
        try:
            parsed = json.loads(message)
        except ValueError:
            parsed = None
        request_id = parsed.get("id") if isinstance(parsed, dict) else None
        try:
            reply = receive_reply(ws, request_id)
            assert reply["type"] in ("ack", "error")
            if reply["type"] == "error":
                assert isinstance(reply["code"], int) and 400 <= reply["code"] < 500, reply
                assert reply["detail"]
            check_alive(ws)
        except WebSocketDisconnect as exc:  # what the test exists to catch
            raise AssertionError(
                f"the socket was dropped ({exc.code}) by {message[:200]!r}"
            ) from None


@given(payload=st.binary(max_size=200))
def test_binary_frames_get_an_error_and_the_socket_stays(
    client: TestClient, payload: bytes
) -> None:
    with client.websocket_connect("/streams/ws") as ws:
        ws.send_bytes(payload)
        reply = ws.receive_json()
        assert reply["type"] in ("error", "ack"), reply
        check_alive(ws)


def test_deeply_nested_json_gets_an_error_and_the_socket_stays(client: TestClient) -> None:
    with client.websocket_connect("/streams/ws") as ws:
        ws.send_text("[" * 30_000 + "]" * 30_000)
        assert ws.receive_json()["type"] == "error"
        check_alive(ws)


# -- SSE resume ids ------------------------------------------------------------------------


@given(st.text(max_size=80) | st.uuids().map(str))
def test_reading_the_time_of_any_resume_id_never_raises(event_id: str) -> None:
    millis = uuid7_millis(event_id)
    assert millis is None or millis >= 0


# -- errors are documented -----------------------------------------------------------------


def test_every_wire_error_is_a_streaming_error_with_a_client_status() -> None:
    for kind in StreamingError.__subclasses__():
        assert 400 <= kind.status_code < 600
