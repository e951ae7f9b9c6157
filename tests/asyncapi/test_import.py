"""Streaming APIs created from AsyncAPI documents."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from example_app.main import streaming as example_streaming
from example_app.models import OrderRequest
from fastapi_streaming import InvalidPayload, Mode, StreamingAPI, WebSubSettings
from fastapi_streaming.asyncapi import (
    SUPPORTED_VERSIONS,
    AsyncAPIImportError,
    get_asyncapi,
    to_yaml,
)
from fastapi_streaming.fanout import ClientQueue
from tests.apps import asyncapi_app

APIS = {"example": example_streaming, "every-feature": asyncapi_app.streaming}


def same_hub(original: StreamingAPI, tmp_path: Path) -> WebSubSettings | None:
    """A WebSub hub is how an app is deployed, not part of its document: give the imported API
    one (on a database of the test's own) when the original has one."""
    if original.websub is None:
        return None
    return WebSubSettings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'websub.sqlite3'}")


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
@pytest.mark.parametrize("name", list(APIS))
def test_export_import_export_gives_the_same_document(
    name: str, version: str, tmp_path: Path
) -> None:
    exported = get_asyncapi(APIS[name], version=version)
    path = tmp_path / "asyncapi.yaml"
    path.write_text(to_yaml(exported))
    hub = same_hub(APIS[name], tmp_path)
    imported = StreamingAPI.from_asyncapi(path, websub=hub)
    # A derived topic's computation is code: the import keeps the topic and lists what it left.
    expected, derived = underived(exported)
    assert [warning.pointer for warning in imported.import_warnings] == [
        f"/channels/{key.replace('~', '~0').replace('/', '~1')}/x-fastapi-streaming/derivedFrom"
        for key in derived
    ]
    assert get_asyncapi(imported, version=version) == expected
    # ... and across versions: 2.6 in, 3.0 out is what 3.0 out was.
    again = StreamingAPI.from_asyncapi(exported, websub=hub)
    assert get_asyncapi(again) == underived(get_asyncapi(APIS[name]))[0]


def underived(document: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A copy of ``document`` without ``derivedFrom`` extensions, and their channels' keys."""
    document = copy.deepcopy(document)
    keys = []
    for key, channel in document["channels"].items():
        extension = channel.get("x-fastapi-streaming", {})
        if extension.pop("derivedFrom", None) is not None:
            keys.append(key)
            if not extension:
                del channel["x-fastapi-streaming"]
    return document, keys


def test_imported_topics_have_the_documents_addresses_modes_scopes_and_channels() -> None:
    streaming = StreamingAPI.from_asyncapi(get_asyncapi(asyncapi_app.streaming))
    rooms = streaming.topics.get("/rooms/{room_id:int}")
    assert rooms is not None
    assert rooms.modes == (Mode.SUBSCRIBE, Mode.PUBLISH)
    assert rooms.publish is not None and rooms.publish.scopes == ("chat:write", "chat:read")
    assert rooms.subscribe is not None and rooms.subscribe.handler is None
    assert streaming.topics.resolve("/rooms/7") == (rooms, {"room_id": 7})
    stocks = streaming.topics.get("/stocks/{symbol}")
    assert stocks is not None
    assert stocks.channel_for({"symbol": "AAPL"}) == "market.quotes.AAPL"
    assert stocks.overflow is not None and stocks.overflow.value == "latest"
    assert stocks.max_queue == 50
    assert streaming.topics.get("/devices/{device_id:uuid}/readings") is not None
    assert streaming.topics.get("/files/{path:path}") is not None
    assert streaming.topics.get("/thresholds/{level:float}") is not None
    assert streaming.title == "Every feature"
    assert streaming.contact == asyncapi_app.streaming.contact


def test_constructor_options_win_over_the_document() -> None:
    streaming = StreamingAPI.from_asyncapi(
        get_asyncapi(example_streaming), title="Renamed", broker="memory://", prefix="/events"
    )
    assert streaming.title == "Renamed"
    assert streaming.prefix == "/events"


async def test_incoming_events_are_validated_against_the_message_schemas() -> None:
    streaming = StreamingAPI.from_asyncapi(get_asyncapi(example_streaming))
    async with streaming.running() as runtime:
        with pytest.raises(InvalidPayload) as invalid:
            await runtime.publish("/orders", data={"symbol": "AAPL", "side": "hold"})
        accepted = await runtime.publish(
            "/orders", data={"symbol": "AAPL", "side": "buy", "quantity": 3}
        )
        with pytest.raises(InvalidPayload):
            await streaming.emit("/stocks/AAPL", {"symbol": "AAPL", "price": -1})
    assert accepted is not None
    [error] = invalid.value.detail
    assert error["type"] == "json_schema"
    assert "'hold' is not one of ['buy', 'sell']" in error["msg"]
    assert "(at /side)" in error["msg"]


async def test_handlers_attach_to_declared_topics_and_transform_or_filter(tmp_path: Path) -> None:
    hub = same_hub(example_streaming, tmp_path)
    streaming = StreamingAPI.from_asyncapi(get_asyncapi(example_streaming), websub=hub)

    @streaming.subscribe("/stocks/{symbol}")
    async def only_cheap(event: dict[str, Any], symbol: str) -> dict[str, Any] | None:
        """Only quotes under 100, with the symbol in lower case."""
        if event["price"] >= 100:
            return None
        return {**event, "symbol": symbol.lower()}

    topic = streaming.topics.get("/stocks/{symbol}")
    assert topic is not None and topic.subscribe is not None
    assert topic.subscribe.handler is only_cheap
    async with streaming.running() as runtime:
        queue = ClientQueue(10)
        await runtime.subscribe(queue, "/stocks/ACME")
        for price in (150.0, 99.5):
            await streaming.emit(
                "/stocks/ACME", {"symbol": "ACME", "price": price, "time": "2024-01-01T00:00:00Z"}
            )
        assert await queue.wait(5)
        [event] = queue.take()
        await runtime.disconnect(queue, ["/stocks/ACME"])
    assert event.data_json.decode().startswith('{"symbol":"acme","price":99.5')
    # The document stays the contract: attaching a handler changes nothing in it.
    assert get_asyncapi(streaming) == underived(get_asyncapi(example_streaming))[0]


async def test_an_attached_handler_gets_its_own_type_after_the_schema_check() -> None:
    streaming = StreamingAPI.from_asyncapi(get_asyncapi(example_streaming))
    seen: list[Any] = []

    @streaming.publish("/orders", scopes=["orders:write"])
    async def place(event: OrderRequest) -> OrderRequest:
        seen.append(event)
        return event

    topic = streaming.topics.get("/orders")
    assert topic is not None and topic.publish is not None
    assert topic.publish.scopes == ("orders:write",)
    async with streaming.running() as runtime:
        await runtime.publish("/orders", data={"symbol": "AAPL", "side": "sell", "quantity": 1})
        with pytest.raises(InvalidPayload) as invalid:
            await runtime.publish("/orders", data={"symbol": "AAPL", "side": "sell"})
    assert isinstance(seen[0], OrderRequest)
    assert invalid.value.detail[0]["type"] == "json_schema"


def test_a_second_handler_for_one_mode_is_still_refused() -> None:
    streaming = StreamingAPI.from_asyncapi(get_asyncapi(example_streaming))

    @streaming.publish("/orders")
    async def first(event: Any) -> Any:
        return event

    with pytest.raises(ValueError, match="already has a publish operation"):

        @streaming.publish("/orders")
        async def second(event: Any) -> Any:
            return event


def test_a_topic_that_is_not_a_path_maps_onto_that_broker_channel() -> None:
    document = {
        "asyncapi": "3.0.0",
        "info": {"title": "Kafka", "version": "1"},
        "channels": {
            "quotes": {
                "address": "market.quotes.{symbol}",
                "parameters": {"symbol": {}},
                "messages": {"quote": {"payload": {"type": "object"}}},
            }
        },
        "operations": {
            "sendQuotes": {"action": "send", "channel": {"$ref": "#/channels/quotes"}},
        },
    }
    streaming = StreamingAPI.from_asyncapi(document)
    topic = streaming.topics.get("/market.quotes.{symbol}")
    assert topic is not None
    assert topic.channel_for({"symbol": "AAPL"}) == "market.quotes.AAPL"
    assert topic.modes == (Mode.SUBSCRIBE,)


def test_scopes_are_read_from_oauth2_security_when_there_is_no_extension() -> None:
    document = {
        "asyncapi": "2.6.0",
        "info": {"title": "t", "version": "1"},
        "channels": {
            "/news": {
                "subscribe": {
                    "security": [{"oauth2": ["news:read"]}],
                    "message": {"$ref": "#/components/messages/News"},
                }
            }
        },
        "components": {
            "messages": {"News": {"payload": {"type": "string"}}},
            "securitySchemes": {
                "oauth2": {
                    "type": "oauth2",
                    "flows": {
                        "implicit": {
                            "authorizationUrl": "https://auth.example.com",
                            "scopes": {"news:read": "Read."},
                        }
                    },
                }
            },
        },
    }
    streaming = StreamingAPI.from_asyncapi(document)
    topic = streaming.topics.get("/news")
    assert topic is not None and topic.subscribe is not None
    assert topic.subscribe.scopes == ("news:read",)
    assert streaming.security_schemes == {
        "oauth2": {
            "type": "oauth2",
            "flows": {
                "implicit": {
                    "authorizationUrl": "https://auth.example.com",
                    "availableScopes": {"news:read": "Read."},
                }
            },
        }
    }


# -- errors name the offending part ---------------------------------------------------------


def v3_document() -> dict[str, Any]:
    return copy.deepcopy(get_asyncapi(example_streaming))


def v2_document() -> dict[str, Any]:
    return copy.deepcopy(get_asyncapi(example_streaming, version="2.6.0"))


def break_title(document: dict[str, Any]) -> None:
    del document["info"]["title"]


def break_version(document: dict[str, Any]) -> None:
    document["asyncapi"] = "1.2.0"


def break_channel_ref(document: dict[str, Any]) -> None:
    document["operations"]["publish_orders"]["channel"] = {"$ref": "#/channels/nowhere"}


def break_external_ref(document: dict[str, Any]) -> None:
    document["operations"]["publish_orders"]["channel"] = {"$ref": "other.yaml#/channels/x"}


def break_schema_format(document: dict[str, Any]) -> None:
    message = document["channels"]["orders"]["messages"]["Order"]
    message["payload"] = {"schemaFormat": "application/vnd.apache.avro;version=1.9.0", "schema": {}}


def break_content_type(document: dict[str, Any]) -> None:
    document["channels"]["orders"]["messages"]["Order"]["contentType"] = "application/xml"


def break_reply(document: dict[str, Any]) -> None:
    # The application replies to what it receives, not to what it sends.
    document["operations"]["subscribe_orders"]["reply"] = {"channel": {"$ref": "#/channels/orders"}}


def break_address(document: dict[str, Any]) -> None:
    document["channels"]["orders"]["address"] = None


def break_schema(document: dict[str, Any]) -> None:
    document["components"]["schemas"]["Order"]["properties"]["id"]["type"] = 12


def break_payload_ref(document: dict[str, Any]) -> None:
    message = document["channels"]["orders"]["messages"]["Order"]
    message["payload"] = {"$ref": "#/components/schemas/Missing"}


def break_action(document: dict[str, Any]) -> None:
    document["operations"]["publish_orders"]["action"] = "shout"


def break_v2_parameter(document: dict[str, Any]) -> None:
    parameter = document["channels"]["/stocks/{symbol}"]["parameters"]["symbol"]
    parameter["location"] = "$message.payload#/symbol"


def break_v2_channels(document: dict[str, Any]) -> None:
    del document["channels"]


BROKEN = [
    (v3_document, break_title, "/info/title"),
    (v3_document, break_version, "/asyncapi"),
    (v3_document, break_channel_ref, "/operations/publish_orders/channel/$ref"),
    (v3_document, break_external_ref, "/operations/publish_orders/channel/$ref"),
    (v3_document, break_schema_format, "/channels/orders/messages/Order/payload"),
    (v3_document, break_content_type, "/channels/orders/messages/Order/contentType"),
    (v3_document, break_reply, "/operations/subscribe_orders/reply"),
    (v3_document, break_address, "/channels/orders/address"),
    (v3_document, break_schema, "/components/schemas/Order/properties/id/type"),
    (v3_document, break_payload_ref, "/channels/orders/messages/Order/payload/$ref"),
    (v3_document, break_action, "/operations/publish_orders/action"),
    (v2_document, break_v2_parameter, "/channels/~1stocks~1{symbol}/parameters/symbol/location"),
    (v2_document, break_v2_channels, "/channels"),
]


@pytest.mark.parametrize(
    ("make", "damage", "expected"), BROKEN, ids=[damage.__name__ for _, damage, _ in BROKEN]
)
def test_errors_name_the_json_pointer_of_the_offending_part(
    make: Any, damage: Any, expected: str
) -> None:
    document = make()
    damage(document)
    with pytest.raises(AsyncAPIImportError) as error:
        StreamingAPI.from_asyncapi(document)
    assert error.value.pointer == expected, str(error.value)
    assert str(error.value).startswith(expected + ": ")


def test_a_file_that_is_not_json_or_yaml(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("asyncapi: [3.0.0\n")
    with pytest.raises(AsyncAPIImportError, match="neither JSON nor YAML"):
        StreamingAPI.from_asyncapi(path)
