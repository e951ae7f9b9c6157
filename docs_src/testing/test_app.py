from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from fastapi_streaming.testing import stream_events

from .app import app, exchange_rate


@pytest.fixture
def client() -> Iterator[TestClient]:
    app.dependency_overrides[exchange_rate] = lambda: 1.0  # no rates service in tests
    with TestClient(app) as client:  # `with` runs the lifespan: the streaming API starts
        yield client
    app.dependency_overrides.clear()


def test_sse_subscribers_get_published_quotes(client: TestClient) -> None:
    with stream_events(client, "/streams/sse/stocks/AAPL", timeout=5) as events:
        answer = client.post("/streams/publish/stocks/AAPL", json={"symbol": "AAPL", "price": 2})
        assert answer.status_code == 202
        event = next(events)  # waits up to 5 seconds, then raises TimeoutError
    assert event.id == answer.json()["id"]
    assert event.json() == {"symbol": "AAPL", "price": 2.0}


def test_websocket_subscribers_get_published_quotes(client: TestClient) -> None:
    with client.websocket_connect("/streams/ws") as socket:
        socket.send_json({"type": "subscribe", "id": 1, "topic": "/stocks/MSFT"})
        assert socket.receive_json() == {"type": "ack", "id": 1}
        socket.send_json(
            {
                "type": "publish",
                "id": 2,
                "topic": "/stocks/MSFT",
                "data": {"symbol": "MSFT", "price": 3},
            }
        )
        messages = [socket.receive_json(), socket.receive_json()]
    event = next(message for message in messages if message["type"] == "event")
    assert event["data"] == {"symbol": "MSFT", "price": 3.0}


def test_a_dependency_override_changes_what_is_published(client: TestClient) -> None:
    app.dependency_overrides[exchange_rate] = lambda: 2.0
    with stream_events(client, "/streams/sse/stocks/GOOG") as events:
        client.post("/streams/publish/stocks/GOOG", json={"symbol": "GOOG", "price": 1.5})
        assert next(events).json()["price"] == 3.0


def test_invalid_events_are_refused_like_fastapi_bodies(client: TestClient) -> None:
    answer = client.post("/streams/publish/stocks/AAPL", json={"symbol": "AAPL"})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "price"]


def test_orders_need_the_scope_their_security_dependency_asks_for(client: TestClient) -> None:
    order = {"symbol": "AAPL", "quantity": 5}
    assert client.post("/streams/publish/orders", json=order).status_code == 401  # no token
    bob = {"Authorization": "Bearer bob-token"}
    refused = client.post("/streams/publish/orders", json=order, headers=bob)
    assert refused.status_code == 403
    assert refused.json() == {"detail": "needs orders:write"}  # SecurityScopes said which
    with stream_events(client, "/streams/sse/orders") as events:
        headers = {"Authorization": "Bearer alice-token"}
        placed = client.post("/streams/publish/orders", json=order, headers=headers)
        assert placed.status_code == 202
        assert next(events).json() == {**order, "trader": "alice"}
