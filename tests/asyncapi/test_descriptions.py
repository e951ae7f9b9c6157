"""What the docs page shows for a topic with both modes: each operation its own handler's
docstring, no description twice, summaries without Markdown backticks."""

from __future__ import annotations

from typing import Any

from fastapi_streaming import StreamingAPI
from fastapi_streaming.asyncapi import get_asyncapi


def both_modes(version: str) -> dict[str, Any]:
    streaming = StreamingAPI()

    @streaming.publish("/orders", summary="Place an `Order`")
    async def place(event: dict[str, Any]) -> dict[str, Any]:
        """Clients place orders here."""
        return event

    @streaming.subscribe("/orders")
    async def follow(event: dict[str, Any]) -> dict[str, Any]:
        """The back office follows every order."""
        return event

    return get_asyncapi(streaming, version=version)


def test_the_subscribe_operation_is_not_described_by_the_publish_handler() -> None:
    document = both_modes("3.0.0")
    channel = document["channels"]["orders"]
    operations = document["operations"]
    assert "description" not in channel
    assert operations["subscribe_orders"]["description"] == "The back office follows every order."
    assert operations["publish_orders"]["description"] == "Clients place orders here."
    v2 = both_modes("2.6.0")["channels"]["/orders"]
    assert "description" not in v2
    descriptions = [v2["subscribe"]["description"], v2["publish"]["description"]]
    assert descriptions == ["The back office follows every order.", "Clients place orders here."]


def test_summaries_are_plain_text() -> None:
    assert both_modes("3.0.0")["operations"]["publish_orders"]["summary"] == "Place an Order"


def test_a_declared_channel_description_stays() -> None:
    streaming = StreamingAPI.from_asyncapi(
        {
            "asyncapi": "3.0.0",
            "info": {"title": "T", "version": "1"},
            "channels": {
                "news": {
                    "address": "/news",
                    "description": "Company news.",
                    "messages": {"News": {"payload": {"type": "string"}}},
                }
            },
            "operations": {
                "readNews": {
                    "action": "send",
                    "channel": {"$ref": "#/channels/news"},
                    "description": "Read the news.",
                }
            },
        }
    )
    document = get_asyncapi(streaming)
    assert document["channels"]["news"]["description"] == "Company news."
