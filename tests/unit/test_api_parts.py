"""The API hands narrow parts to its edges; what is changed on the API reaches them."""

from __future__ import annotations

from typing import Any

import pytest

from fastapi_streaming import NotRunningError, StreamingAPI
from fastapi_streaming.asyncapi import get_asyncapi
from fastapi_streaming.security import AccessControl


def test_settings_changed_on_the_api_reach_the_document_and_the_transports() -> None:
    streaming = StreamingAPI(title="Before", prefix="/streams")

    @streaming.subscribe("/news")
    async def news(event: dict[str, Any]) -> dict[str, Any]:
        return event

    streaming.title = "After"
    streaming.prefix = "/events"
    streaming.public_url = "https://api.example.com"
    access = AccessControl((), require_auth=True)
    streaming.access = access

    assert streaming.context.prefix == "/events"
    assert streaming.context.public_url == "https://api.example.com"
    assert streaming.context.access is access
    document = streaming.asyncapi()  # the cached document, at the public URL
    assert get_asyncapi(streaming)["info"]["title"] == "After"
    assert document["info"]["title"] == "After"
    assert document["servers"]["sse"]["pathname"] == "/events/sse"
    assert document["servers"]["sse"]["host"] == "api.example.com"
    assert "security" in document["operations"]["subscribe_news"]  # require_auth


def test_the_context_says_when_the_api_is_not_running() -> None:
    streaming = StreamingAPI()
    with pytest.raises(NotRunningError, match="init_app"):
        streaming.context.runtime  # noqa: B018
    assert not streaming.is_running


async def test_the_context_carries_the_runtime_while_running() -> None:
    streaming = StreamingAPI()
    async with streaming.running() as runtime:
        assert streaming.context.runtime is runtime
        assert streaming.runtime is runtime
    assert not streaming.context.is_running
