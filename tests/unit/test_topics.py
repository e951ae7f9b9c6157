from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.requests import Request

from fastapi_streaming import HandlerDefinitionError, Mode, StreamingAPI
from fastapi_streaming.topics import Topic, TopicRegistry, default_channel


@pytest.mark.parametrize(
    ("address", "channel"),
    [
        ("/stocks/{symbol}", "stocks.{symbol}"),
        ("/rooms/{room_id:int}/messages", "rooms.{room_id}.messages"),
        ("/orders", "orders"),
        ("/", "root"),
    ],
)
def test_default_channel_replaces_slashes_with_dots(address: str, channel: str) -> None:
    assert default_channel(address) == channel


def test_match_converts_typed_parameters() -> None:
    topic = Topic("/rooms/{room_id:int}/users/{user}")
    assert topic.match("/rooms/42/users/ada") == {"room_id": 42, "user": "ada"}
    assert topic.match("/rooms/abc/users/ada") is None
    assert topic.match("/rooms/42/users/ada/extra") is None


def test_match_refuses_control_characters() -> None:
    assert Topic("/stocks/{symbol}").match("/stocks/A\nB") is None


def test_uuid_parameter_round_trips_to_channel_and_address() -> None:
    topic = Topic("/devices/{device:uuid}")
    value = uuid.UUID("12345678-1234-5678-1234-567812345678")
    params = topic.match(f"/devices/{value}")
    assert params == {"device": value}
    assert topic.channel_for(params) == f"devices.{value}"
    assert topic.address_for(params) == f"/devices/{value}"


def test_explicit_channel_template_maps_onto_existing_broker_topic() -> None:
    topic = Topic("/stocks/{symbol}", channel="market.quotes.{symbol}")
    assert topic.channel_for({"symbol": "AAPL"}) == "market.quotes.AAPL"


def test_channel_template_with_unknown_parameter_is_refused() -> None:
    with pytest.raises(ValueError, match="not parameters of the address"):
        Topic("/stocks/{symbol}", channel="quotes.{ticker}")


def test_address_must_start_with_a_slash() -> None:
    with pytest.raises(ValueError, match="must start with '/'"):
        Topic("stocks")


def test_registry_resolves_concrete_addresses_and_bumps_revision() -> None:
    registry = TopicRegistry()
    before = registry.revision
    registry.add(Topic("/a/{x:int}"))
    registry.add(Topic("/b"))
    assert registry.revision > before
    found = registry.resolve("/a/7")
    assert found is not None and found[0].address == "/a/{x:int}" and found[1] == {"x": 7}
    assert registry.resolve("/c") is None


@pytest.mark.parametrize("template_first", [True, False])
def test_a_fixed_address_beats_a_template_whatever_the_declaration_order(
    template_first: bool,
) -> None:
    registry = TopicRegistry()
    topics = [Topic("/{queue}"), Topic("/rpc_queue")]
    for topic in topics if template_first else reversed(topics):
        registry.add(topic)
    found = registry.resolve("/rpc_queue")
    assert found is not None and found[0].address == "/rpc_queue"
    other = registry.resolve("/amq.gen-1")
    assert other is not None and other[0].address == "/{queue}"
    assert other[1] == {"queue": "amq.gen-1"}


def test_a_template_with_fewer_parameters_beats_one_with_more() -> None:
    registry = TopicRegistry()
    for address in ("/{path:path}", "/{kind}/{id}", "/rooms/{id}", "/rooms/lobby"):
        registry.add(Topic(address))
    assert [
        registry.resolve(a)[0].address for a in ("/rooms/lobby", "/rooms/7", "/x/7", "/a/b/c")
    ] == [  # type: ignore[index]
        "/rooms/lobby",
        "/rooms/{id}",
        "/{kind}/{id}",
        "/{path:path}",
    ]


def test_decorated_topics_reach_the_fixed_address_too() -> None:
    streaming = StreamingAPI()

    @streaming.subscribe("/{queue}")
    async def replies(event: dict[str, Any], queue: str) -> dict[str, Any]:
        return event

    @streaming.publish("/rpc_queue")
    async def requests(event: dict[str, Any]) -> dict[str, Any]:
        return event

    found = streaming.topics.resolve("/rpc_queue")
    assert found is not None and found[0].modes == (Mode.PUBLISH,)


class Quote(BaseModel):
    symbol: str
    price: float


def test_decorators_record_modes_scopes_docstrings_and_payload() -> None:
    streaming = StreamingAPI()

    @streaming.subscribe("/stocks/{symbol}", scopes=["stocks:read"])
    async def quotes(event: Quote, symbol: str) -> Quote:
        """Live quotes."""
        return event

    @streaming.publish("/stocks/{symbol}", scopes=["stocks:write"])
    async def publish_quote(event: Quote, symbol: str) -> Quote:
        return event

    topic = streaming.topics.get("/stocks/{symbol}")
    assert topic is not None
    assert topic.modes == (Mode.SUBSCRIBE, Mode.PUBLISH)
    assert topic.payload is Quote
    assert topic.subscribe is not None and topic.subscribe.scopes == ("stocks:read",)
    assert topic.publish is not None and topic.publish.scopes == ("stocks:write",)
    assert topic.subscribe.description == "Live quotes."
    # A handler's docstring describes its operation, not the topic (both modes share it).
    assert topic.description is None and topic.publish.description is None
    assert topic.subscribe.handler is quotes


def test_one_function_may_serve_both_modes() -> None:
    streaming = StreamingAPI()

    @streaming.subscribe("/chat")
    @streaming.publish("/chat")
    async def chat(event: dict[str, Any]) -> dict[str, Any]:
        return event

    topic = streaming.topics.get("/chat")
    assert topic is not None and topic.modes == (Mode.SUBSCRIBE, Mode.PUBLISH)


def test_a_mode_cannot_be_declared_twice() -> None:
    streaming = StreamingAPI()
    streaming.add_operation(Mode.SUBSCRIBE, "/x", None)
    with pytest.raises(ValueError, match="already has a subscribe operation"):
        streaming.add_operation(Mode.SUBSCRIBE, "/x", None)


def test_conflicting_explicit_channels_are_refused() -> None:
    streaming = StreamingAPI()
    streaming.add_operation(Mode.SUBSCRIBE, "/x", None, channel="one")
    with pytest.raises(ValueError, match="already mapped to channel 'one'"):
        streaming.add_operation(Mode.PUBLISH, "/x", None, channel="two")


def test_subscribe_handler_cannot_ask_for_the_client_connection() -> None:
    streaming = StreamingAPI()
    with pytest.raises(HandlerDefinitionError, match="runs once per event for all clients"):

        @streaming.subscribe("/x")
        async def per_client(event: dict[str, Any], request: Request) -> None: ...


def test_handler_with_two_payload_parameters_is_refused_with_a_clear_message() -> None:
    streaming = StreamingAPI()
    with pytest.raises(HandlerDefinitionError, match="cannot provide parameter 'second'"):

        @streaming.publish("/x/{a}")
        async def confused(first: dict[str, Any], second: int, a: str) -> None: ...


async def test_init_app_keeps_the_apps_own_lifespan() -> None:
    seen: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        seen.append(f"start running={streaming.is_running}")
        yield
        seen.append(f"stop running={streaming.is_running}")

    streaming = StreamingAPI()
    app = FastAPI(lifespan=lifespan)
    streaming.init_app(app)
    async with app.router.lifespan_context(app):
        assert streaming.is_running
    assert seen == ["start running=True", "stop running=True"]
    assert not streaming.is_running
