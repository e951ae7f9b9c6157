"""APIs created from AsyncAPI documents, served side by side for the end-to-end tests.

- ``/server``: rpc-server's construct (``{queue}`` declared before ``rpc_queue``, which the
  application receives on);
- ``/client``: rpc-client's (the application sends on ``rpc_queue``);
- ``/secure``: streetlights' (a server that requires credentials).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from fastapi_streaming import StreamingAPI


def rpc(role: str) -> dict[str, Any]:
    message = {"payload": {"type": "object"}}
    receive, send = ("receive", "send") if role == "server" else ("send", "receive")
    return {
        "asyncapi": "3.0.0",
        "info": {"title": f"RPC {role}", "version": "1.0.0"},
        "channels": {
            "queue": {
                "address": "{queue}",
                "parameters": {"queue": {}},
                "messages": {"m": message},
            },
            "rpc_queue": {"address": "rpc_queue", "messages": {"m": message}},
        },
        "operations": {
            "requests": {"action": receive, "channel": {"$ref": "#/channels/rpc_queue"}},
            "results": {"action": send, "channel": {"$ref": "#/channels/queue"}},
        },
    }


SECURE = {
    "asyncapi": "2.6.0",
    "info": {"title": "Streetlights", "version": "1.0.0"},
    "servers": {
        "production": {
            "url": "mqtt://broker.example.com",
            "protocol": "mqtt",
            "security": [{"apiKey": []}],
        }
    },
    "channels": {
        "light/measured": {"publish": {"message": {"payload": {"type": "object"}}}},
    },
    "components": {"securitySchemes": {"apiKey": {"type": "apiKey", "in": "user"}}},
}

app = FastAPI()
for prefix, document in (
    ("/server", rpc("server")),
    ("/client", rpc("client")),
    ("/secure", SECURE),
):
    StreamingAPI.from_asyncapi(
        document, prefix=prefix, asyncapi_url=None, asyncapi_yaml_url=None, asyncapi_docs_url=None
    ).init_app(app)
