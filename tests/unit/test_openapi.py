"""HTTP publish is an HTTP API: FastAPI's OpenAPI document and /docs show it, and link to the
AsyncAPI page for the streams."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from fastapi_streaming import StreamingAPI


class Reading(BaseModel):
    celsius: float


def openapi(**options: Any) -> dict[str, Any]:
    streaming = StreamingAPI(**options)

    @streaming.publish("/rooms/{room:int}/readings", scopes=["readings:write"])
    async def record(event: Reading, room: int) -> Reading:
        """Record a reading of one room."""
        return event

    @streaming.subscribe("/rooms/{room:int}/readings")
    async def readings(event: Reading, room: int) -> Reading:
        return event

    @streaming.subscribe("/alerts")
    async def alerts(event: str) -> str:
        return event

    app = FastAPI(title="Greenhouse", description="Plants.")
    streaming.init_app(app)
    with TestClient(app) as client:
        document: dict[str, Any] = client.get("/openapi.json").json()
        # The documented operation is not what serves requests: the body is checked our way.
        refused = client.post("/streams/publish/rooms/1/readings", json={})
        assert refused.status_code == 401  # credentials come before the body
    return document


def test_each_publish_topic_is_a_documented_post_operation() -> None:
    document = openapi()
    publish_paths = [path for path in document["paths"] if "/publish" in path]
    assert publish_paths == ["/streams/publish/rooms/{room}/readings"]
    operation = document["paths"]["/streams/publish/rooms/{room}/readings"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/Reading"}
    assert "celsius" in document["components"]["schemas"]["Reading"]["properties"]
    assert operation["parameters"][0]["name"] == "room"
    assert operation["parameters"][0]["schema"]["type"] == "integer"
    assert {"202", "401", "403", "404", "413", "422"} <= set(operation["responses"])
    assert operation["description"].startswith("Record a reading of one room.")


def test_the_openapi_description_links_to_the_asyncapi_page() -> None:
    description = openapi()["info"]["description"]
    assert description.startswith("Plants.")
    assert "(/asyncapi)" in description
    assert "(/asyncapi)" not in openapi(asyncapi_docs_url=None)["info"]["description"]
