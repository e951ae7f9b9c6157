"""What an import did not keep: listed on the API it made, and logged."""

from __future__ import annotations

from typing import Any

from fastapi_streaming import StreamingAPI

document: dict[str, Any] = {
    "asyncapi": "3.0.0",
    "info": {"title": "Lights", "version": "1.0.0"},
    "channels": {
        "lightTurnOn": {
            "address": "/lights/{id}/on",
            "parameters": {"id": {"description": "The light's id."}},
            "bindings": {"mqtt": {"bindingVersion": "0.2.0"}},  # not kept
            "messages": {"turnOn": {"payload": {"type": "object"}}},
        }
    },
    "operations": {
        "turnOn": {
            "action": "receive",
            "channel": {"$ref": "#/channels/lightTurnOn"},
            "messages": [{"$ref": "#/channels/lightTurnOn/messages/turnOn"}],
        }
    },
}

streaming = StreamingAPI.from_asyncapi(document)
for warning in streaming.import_warnings:
    print(warning)  # /channels/lightTurnOn/bindings: the channel's bindings
