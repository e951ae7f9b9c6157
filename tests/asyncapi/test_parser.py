"""Every generated document passes the official AsyncAPI parser with no errors."""

from __future__ import annotations

from typing import Any

import pytest

from docs_src.bigger_applications.main import streaming as routers_streaming
from docs_src.processing.app import streaming as processing_streaming
from example_app.main import streaming as example_streaming
from fastapi_streaming import StreamingAPI, WebSubSettings
from fastapi_streaming.asyncapi import SUPPORTED_VERSIONS, get_asyncapi
from fastapi_streaming.security import JWTAuthorizer
from tests.apps import asyncapi_app, core_app
from tests.asyncapi.test_document import LoginAuthorizer
from tests.support.asyncapi_parser import parse_documents

pytestmark = pytest.mark.node


def oauth2_and_websub_api() -> StreamingAPI:
    """Security schemes given by the user (OAuth2 scopes on operations) and a WebSub server."""
    streaming = StreamingAPI(
        title="OAuth2 and WebSub",
        # Only described here, never started: the database is not opened.
        websub=WebSubSettings(database_url="sqlite+aiosqlite:///:memory:"),
        security_schemes={
            "oauth2": {
                "type": "oauth2",
                "flows": {
                    "clientCredentials": {
                        "tokenUrl": "https://auth.example.com/token",
                        "availableScopes": {"news:read": "Read the news.", "news:write": "Write."},
                    }
                },
            },
            "bearerAuth": {"type": "http", "scheme": "bearer"},
        },
    )

    @streaming.subscribe("/news/{section}", scopes=["news:read"])
    async def news(event: dict[str, Any], section: str) -> dict[str, Any]:
        return event

    @streaming.publish("/news/{section}", scopes=["news:write"])
    async def write(event: dict[str, Any], section: str) -> dict[str, Any]:
        return event

    return streaming


def require_auth_api() -> StreamingAPI:
    """Every operation needs credentials (``require_auth``), with and without scopes."""
    streaming = StreamingAPI(
        title="Closed", authorizer=JWTAuthorizer(key="k" * 32), require_auth=True
    )

    @streaming.subscribe("/closed")
    async def closed(event: int) -> int:
        return event

    @streaming.publish("/closed", scopes=["closed:write"])
    async def write(event: int) -> int:
        return event

    return streaming


def login_api() -> StreamingAPI:
    """An authorizer that describes an OAuth2 password flow with a relative token URL."""
    streaming = StreamingAPI(title="Login", authorizer=LoginAuthorizer())

    @streaming.subscribe("/news", scopes=["news:read"])
    async def news(event: int) -> int:
        return event

    return streaming


def all_documents() -> dict[str, dict[str, Any]]:
    apis = {
        "example": example_streaming,
        "every-feature": asyncapi_app.streaming,
        "core": core_app.streaming,
        "oauth2-websub": oauth2_and_websub_api(),
        "require-auth": require_auth_api(),
        "login": login_api(),
        "routers": routers_streaming,  # tags and deprecated operations
        "processing": processing_streaming,  # a derived topic (x-fastapi-streaming.derivedFrom)
    }
    documents = {}
    for name, streaming in apis.items():
        for version in SUPPORTED_VERSIONS:
            document = get_asyncapi(streaming, version=version, base_url="http://127.0.0.1:8000")
            documents[f"{name}-{version}"] = document
            imported = StreamingAPI.from_asyncapi(document)
            documents[f"{name}-{version}-reimported"] = get_asyncapi(imported, version=version)
    return documents


def test_every_generated_document_parses_without_errors() -> None:
    documents = all_documents()
    results = parse_documents(documents)
    errors = {name: found["errors"] for name, found in results.items() if found["errors"]}
    assert errors == {}
    assert len(results) == len(documents) == 48
    assert "websub" in documents["oauth2-websub-3.0.0"]["servers"]
    routers = documents["routers-3.0.0"]["operations"]
    assert routers["subscribe_v1_orders_legacy"]["x-deprecated"] is True
    assert routers["publish_v1_orders"]["tags"] == [{"name": "orders"}]


def test_the_parser_does_report_errors() -> None:
    """The check above can fail: a document with a broken reference is refused."""
    document = get_asyncapi(asyncapi_app.streaming)
    document["operations"]["publish_orders"]["channel"] = {"$ref": "#/channels/nowhere"}
    broken_v2 = get_asyncapi(asyncapi_app.streaming, version="2.6.0")
    broken_v2["channels"]["/orders"]["publish"]["message"]["payload"] = {"type": "nonsense"}
    results = parse_documents({"broken": document, "broken-v2": broken_v2})
    assert results["broken"]["errors"]
    assert results["broken-v2"]["errors"]
