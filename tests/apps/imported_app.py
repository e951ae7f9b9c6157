"""APIs created from AsyncAPI documents, served side by side for the end-to-end tests.

- ``/server``: rpc-server's construct (``{queue}`` declared before ``rpc_queue``, which the
  application receives on);
- ``/client``: rpc-client's (the application sends on ``rpc_queue``);
- ``/secure``: streetlights' (a server that requires credentials);
- ``/kraken``: kraken's (one socket, several receive operations each with its reply), with a
  handler that answers them.
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


def kraken() -> dict[str, Any]:
    def message(event: str) -> dict[str, Any]:
        properties = {"event": {"const": event}, "reqid": {"type": "integer"}}
        return {"payload": {"type": "object", "properties": properties, "required": ["event"]}}

    def receive(request: str, answer: str) -> dict[str, Any]:
        return {
            "action": "receive",
            "channel": {"$ref": "#/channels/exchange"},
            "messages": [{"$ref": f"#/channels/exchange/messages/{request}"}],
            "reply": {
                "channel": {"$ref": "#/channels/exchange"},
                "messages": [{"$ref": f"#/channels/exchange/messages/{answer}"}],
            },
        }

    events = ("ping", "pong", "subscribe", "subscriptionStatus")
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "Kraken-like", "version": "1.0.0"},
        "channels": {
            "exchange": {"address": "/", "messages": {name: message(name) for name in events}}
        },
        "operations": {
            "receivePing": receive("ping", "pong"),
            "receiveSubscribe": receive("subscribe", "subscriptionStatus"),
        },
    }


def imported(prefix: str, document: dict[str, Any]) -> StreamingAPI:
    return StreamingAPI.from_asyncapi(
        document, prefix=prefix, asyncapi_url=None, asyncapi_yaml_url=None, asyncapi_docs_url=None
    )


one_socket = imported("/kraken", kraken())


@one_socket.publish("/")
async def answer(event: dict[str, Any]) -> dict[str, Any]:
    """Answer each request with the reply its operation declares."""
    kind = "pong" if event["event"] == "ping" else "subscriptionStatus"
    return {"event": kind, "reqid": event.get("reqid")}


app = FastAPI()
for api in (
    imported("/server", rpc("server")),
    imported("/client", rpc("client")),
    imported("/secure", SECURE),
    one_socket,
):
    api.init_app(app)
