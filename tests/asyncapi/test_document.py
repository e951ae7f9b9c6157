"""What the generated document says about an app, in every version."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field
from starlette.requests import HTTPConnection

from fastapi_streaming import StreamingAPI, WebSubSettings
from fastapi_streaming.asyncapi import UnsupportedVersionError, get_asyncapi
from fastapi_streaming.security import BearerAuthenticator, JWTAuthorizer, Principal
from tests.apps import asyncapi_app


class Note(BaseModel):
    text: str = Field(description="What it says.")


@pytest.fixture(scope="module")
def v3() -> dict[str, Any]:
    return get_asyncapi(asyncapi_app.streaming, base_url="https://api.example.com/root/")


@pytest.fixture(scope="module")
def v2() -> dict[str, Any]:
    return get_asyncapi(
        asyncapi_app.streaming, version="2.6.0", base_url="https://api.example.com/root/"
    )


def test_info_comes_from_the_streaming_api(v3: dict[str, Any], v2: dict[str, Any]) -> None:
    assert v3["asyncapi"] == "3.0.0"
    assert v3["info"] == {
        "title": "Every feature",
        "version": "2.3.4",
        "description": asyncapi_app.streaming.description,
        "termsOfService": "https://example.com/terms",
        "contact": {
            "name": "API team",
            "url": "https://example.com/team",
            "email": "api@example.com",
        },
        "license": {"name": "Apache 2.0", "url": "https://www.apache.org/licenses/LICENSE-2.0"},
        "tags": [{"name": "markets", "description": "Market data."}, {"name": "chat"}],
        "externalDocs": {"url": "https://example.com/docs", "description": "The user guide."},
    }
    assert v2["asyncapi"] == "2.6.0"
    assert v2["tags"] == v3["info"]["tags"]
    assert v2["externalDocs"] == v3["info"]["externalDocs"]
    assert v2["info"]["contact"] == v3["info"]["contact"]


def test_one_server_per_transport_with_the_host_asked_for(v3: dict[str, Any]) -> None:
    servers = {
        name: (server["protocol"], server["host"], server["pathname"])
        for name, server in v3["servers"].items()
    }
    assert servers == {
        "websocket": ("wss", "api.example.com", "/root/streams/ws"),
        "sse": ("https", "api.example.com", "/root/streams/sse"),
        "http": ("https", "api.example.com", "/root/streams/publish"),
    }


def test_v2_servers_are_urls(v2: dict[str, Any]) -> None:
    assert v2["servers"]["websocket"]["url"] == "wss://api.example.com/root/streams/ws"
    assert v2["servers"]["http"]["url"] == "https://api.example.com/root/streams/publish"


def test_a_websub_server_when_the_api_has_websub(tmp_path: Path) -> None:
    streaming = StreamingAPI()
    with_websub = StreamingAPI(
        websub=WebSubSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/hub.db")
    )

    for api in (streaming, with_websub):

        @api.subscribe("/news")
        async def news(event: dict[str, Any]) -> dict[str, Any]:
            return event

    assert "websub" not in get_asyncapi(streaming)["servers"]
    document = get_asyncapi(with_websub)
    assert document["servers"]["websub"]["pathname"] == "/streams/websub"
    assert {"$ref": "#/servers/websub"} in document["channels"]["news"]["servers"]


def test_one_channel_per_topic_with_typed_parameters(v3: dict[str, Any]) -> None:
    channels = v3["channels"]
    assert {name: channel["address"] for name, channel in channels.items()} == {
        "audit": "/audit",
        "devices_device_id_readings": "/devices/{device_id}/readings",
        "files_path": "/files/{path}",
        "orders": "/orders",
        "rooms_room_id": "/rooms/{room_id}",
        "stocks_symbol": "/stocks/{symbol}",
        "thresholds_level": "/thresholds/{level}",
    }
    assert channels["stocks_symbol"]["parameters"] == {"symbol": {}}
    assert channels["rooms_room_id"]["parameters"]["room_id"]["x-schema"] == {
        "type": "integer",
        "minimum": 0,
    }
    assert channels["devices_device_id_readings"]["parameters"]["device_id"]["x-schema"] == {
        "type": "string",
        "format": "uuid",
    }
    assert channels["thresholds_level"]["parameters"]["level"]["x-schema"]["type"] == "number"


def test_v2_parameters_carry_schemas(v2: dict[str, Any]) -> None:
    parameters = v2["channels"]["/rooms/{room_id}"]["parameters"]
    assert parameters["room_id"]["schema"] == {"type": "integer", "minimum": 0}
    assert v2["channels"]["/stocks/{symbol}"]["parameters"]["symbol"]["schema"] == {
        "type": "string"
    }


def test_shared_models_are_components_referenced_from_messages(v3: dict[str, Any]) -> None:
    schemas = v3["components"]["schemas"]
    assert {"Money", "Quote", "Order", "OrderRequest", "Reading", "ChatMessage"} <= set(schemas)
    quote = v3["channels"]["stocks_symbol"]["messages"]["Quote"]
    assert quote["payload"] == {"$ref": "#/components/schemas/Quote"}
    assert schemas["Quote"]["properties"]["price"] == {"$ref": "#/components/schemas/Money"}
    order = schemas["Order"]["properties"]["limit"]["anyOf"][0]
    assert order == {"$ref": "#/components/schemas/Money"}


def test_docstrings_field_metadata_and_examples_carry_over(v3: dict[str, Any]) -> None:
    quote = v3["channels"]["stocks_symbol"]["messages"]["Quote"]
    assert quote["description"] == "The latest price of one stock."
    assert quote["title"] == "Quote"
    assert quote["examples"] == [
        {"payload": {"symbol": "AAPL", "price": {"amount": 187.1, "currency": "USD"}}}
    ]
    symbol = v3["components"]["schemas"]["Quote"]["properties"]["symbol"]
    assert symbol["description"] == "Ticker symbol."
    assert symbol["examples"] == ["AAPL"]
    currency = v3["components"]["schemas"]["Money"]["properties"]["currency"]
    assert currency["pattern"] == "^[A-Z]{3}$"
    operation = v3["operations"]["subscribe_stocks_symbol"]
    assert (
        operation["description"] == "Live quotes; a client that falls behind gets the latest price."
    )
    assert operation["summary"] == "Quotes of one symbol."


def test_2020_12_keywords_become_draft_07(v3: dict[str, Any]) -> None:
    reading = v3["components"]["schemas"]["Reading"]["properties"]
    assert reading["position"]["items"] == [{"type": "number"}, {"type": "number"}]
    assert "prefixItems" not in reading["position"]
    assert reading["value"]["discriminator"] == "kind"


def test_modes_become_send_and_receive_operations(v3: dict[str, Any]) -> None:
    actions = {name: op["action"] for name, op in v3["operations"].items()}
    assert actions["subscribe_stocks_symbol"] == "send"
    assert actions["publish_stocks_symbol"] == "receive"
    assert actions["publish_audit"] == "receive"
    assert "subscribe_audit" not in actions


def test_each_operation_names_the_message_its_mode_carries(v3: dict[str, Any]) -> None:
    operations = v3["operations"]
    assert operations["publish_orders"]["messages"] == [
        {"$ref": "#/channels/orders/messages/OrderRequest"}
    ]
    assert operations["subscribe_orders"]["messages"] == [
        {"$ref": "#/channels/orders/messages/Order"}
    ]
    # The same model both ways is one message.
    assert list(v3["channels"]["stocks_symbol"]["messages"]) == ["Quote"]


def test_v2_operations_are_seen_from_the_client(v2: dict[str, Any]) -> None:
    stocks = v2["channels"]["/stocks/{symbol}"]
    assert stocks["subscribe"]["message"]["payload"] == {"$ref": "#/components/schemas/Quote"}
    assert stocks["publish"]["operationId"] == "publish_stocks_symbol"
    assert "subscribe" not in v2["channels"]["/audit"]


def test_scopes_and_security_schemes(v3: dict[str, Any], v2: dict[str, Any]) -> None:
    schemes = v3["components"]["securitySchemes"]
    assert schemes["bearerAuth"]["scheme"] == "bearer"
    assert schemes["accessTokenQuery"] == {**schemes["accessTokenQuery"], "in": "query"}
    assert schemes["accessTokenQuery"]["name"] == "access_token"
    post = v3["operations"]["publish_rooms_room_id"]
    assert post["x-scopes"] == ["chat:write", "chat:read"]
    bearer, query = post["security"]
    assert bearer == {
        **schemes["bearerAuth"],
        "description": schemes["bearerAuth"]["description"]
        + " The token must grant the scopes `chat:write`, `chat:read`.",
    }
    assert query["in"] == "query"
    assert query["description"].endswith(
        "The token must grant the scopes `chat:write`, `chat:read`."
    )
    assert "security" not in v3["operations"]["publish_orders"]
    publish = v2["channels"]["/rooms/{room_id}"]["publish"]
    assert publish["security"] == [{"bearerAuth": []}, {"accessTokenQuery": []}]
    assert publish["x-scopes"] == ["chat:write", "chat:read"]


def test_oauth2_schemes_carry_each_operations_scopes() -> None:
    oauth2 = {
        "type": "oauth2",
        "flows": {
            "clientCredentials": {
                "tokenUrl": "https://auth.example.com/token",
                "availableScopes": {"news:read": "Read the news."},
            }
        },
    }
    streaming = StreamingAPI(security_schemes={"oauth2": oauth2})

    @streaming.subscribe("/news", scopes=["news:read"])
    async def news(event: dict[str, Any]) -> dict[str, Any]:
        return event

    v3 = get_asyncapi(streaming)
    assert v3["components"]["securitySchemes"] == {"oauth2": oauth2}
    assert v3["operations"]["subscribe_news"]["security"] == [{**oauth2, "scopes": ["news:read"]}]
    v2 = get_asyncapi(streaming, version="2.6.0")
    assert v2["channels"]["/news"]["subscribe"]["security"] == [{"oauth2": ["news:read"]}]


def test_no_security_without_scopes() -> None:
    streaming = StreamingAPI()

    @streaming.subscribe("/open")
    async def open_topic(event: int) -> int:
        return event

    document = get_asyncapi(streaming)
    assert "securitySchemes" not in document.get("components", {})
    assert document["channels"]["open"]["messages"]["open_subscribe"]["payload"] == {
        "type": "integer"
    }


def test_protocol_bindings(v3: dict[str, Any]) -> None:
    assert v3["channels"]["orders"]["bindings"]["ws"]["method"] == "GET"
    assert v3["operations"]["publish_orders"]["bindings"]["http"]["method"] == "POST"


def test_broker_channel_and_delivery_settings_are_kept_in_an_extension(
    v3: dict[str, Any],
) -> None:
    assert v3["channels"]["stocks_symbol"]["x-fastapi-streaming"] == {
        "channel": "market.quotes.{symbol}",
        "overflow": "latest",
        "maxQueue": 50,
    }
    assert "x-fastapi-streaming" not in v3["channels"]["orders"]


def test_version_3_1_is_the_same_shape() -> None:
    document = get_asyncapi(asyncapi_app.streaming, version="3.1.0")
    assert document["asyncapi"] == "3.1.0"
    assert set(document["operations"]) == set(get_asyncapi(asyncapi_app.streaming)["operations"])


def test_unknown_versions_are_refused() -> None:
    with pytest.raises(UnsupportedVersionError, match=r"2\.6\.0"):
        get_asyncapi(asyncapi_app.streaming, version="4.0.0")
    with pytest.raises(UnsupportedVersionError):
        StreamingAPI(asyncapi_version="1.0")


def test_the_document_is_cached_until_topics_change() -> None:
    streaming = StreamingAPI(asyncapi_version="2.6.0")

    @streaming.subscribe("/notes")
    async def notes(event: Note) -> Note:
        return event

    first = streaming.asyncapi()
    assert first["asyncapi"] == "2.6.0"
    assert streaming.asyncapi() is first
    assert streaming.asyncapi("3.0.0") is not first

    @streaming.publish("/notes")
    async def write(event: Note) -> Note:
        return event

    second = streaming.asyncapi()
    assert second is not first
    assert "publish" in second["channels"]["/notes"]


def test_when_every_client_must_authenticate_every_operation_lists_the_schemes() -> None:
    streaming = StreamingAPI(authorizer=JWTAuthorizer(key="k" * 32), require_auth=True)

    @streaming.subscribe("/open")
    async def open_topic(event: int) -> int:
        return event

    v3 = get_asyncapi(streaming)
    assert set(v3["components"]["securitySchemes"]) == {"bearerAuth", "accessTokenQuery"}
    assert v3["operations"]["subscribe_open"]["security"] == [
        {"$ref": "#/components/securitySchemes/bearerAuth"},
        {"$ref": "#/components/securitySchemes/accessTokenQuery"},
    ]
    v2 = get_asyncapi(streaming, version="2.6.0")
    assert v2["channels"]["/open"]["subscribe"]["security"] == [
        {"bearerAuth": []},
        {"accessTokenQuery": []},
    ]


class LoginAuthorizer(BearerAuthenticator):
    """Bearer tokens issued by a login route of the same app (an OAuth2 password flow)."""

    async def verify(self, token: str, connection: HTTPConnection) -> Principal:
        raise NotImplementedError

    def security_schemes(self) -> Mapping[str, Mapping[str, Any]]:
        return {
            "login": {
                "type": "oauth2",
                "flows": {"password": {"tokenUrl": "/auth/login", "availableScopes": {}}},
            }
        }


def test_authorizers_describe_their_schemes_completed_for_the_document() -> None:
    streaming = StreamingAPI(authorizer=LoginAuthorizer())

    @streaming.subscribe("/news", scopes=["news:read"])
    async def news(event: int) -> int:
        return event

    document = get_asyncapi(streaming, base_url="https://api.example.com/app/")
    flow = document["components"]["securitySchemes"]["login"]["flows"]["password"]
    assert flow["tokenUrl"] == "https://api.example.com/auth/login"
    assert list(flow["availableScopes"]) == ["news:read"]
    [requirement] = document["operations"]["subscribe_news"]["security"]
    assert requirement["scopes"] == ["news:read"]
