"""Documents using what the AsyncAPI specification's own examples use, imported and exported.

Each document here is written for the test, with the construct of one of the specification's
examples (rpc-server, kraken, streetlights, slack-rtm, social-media...).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from fastapi_streaming import Mode, StreamingAPI
from fastapi_streaming.asyncapi import AsyncAPIImportError, get_asyncapi


def info() -> dict[str, Any]:
    return {"title": "Constructs", "version": "1.0.0"}


def rpc_server(template_first: bool = True) -> dict[str, Any]:
    """rpc-server: the application receives on ``rpc_queue`` and sends on ``{queue}``."""
    channels = {
        "queue": {
            "address": "{queue}",
            "parameters": {"queue": {}},
            "messages": {"sendSumResult": {"payload": {"type": "object"}}},
        },
        "rpc_queue": {
            "address": "rpc_queue",
            "messages": {"sum": {"payload": {"type": "object"}}},
        },
    }
    if not template_first:
        channels = dict(reversed(channels.items()))
    return {
        "asyncapi": "3.0.0",
        "info": info(),
        "channels": channels,
        "operations": {
            "sendSumResult": {"action": "send", "channel": {"$ref": "#/channels/queue"}},
            "sum": {"action": "receive", "channel": {"$ref": "#/channels/rpc_queue"}},
        },
    }


@pytest.mark.parametrize("template_first", [True, False])
async def test_a_fixed_address_reaches_its_own_topic_not_an_earlier_template(
    template_first: bool,
) -> None:
    streaming = StreamingAPI.from_asyncapi(rpc_server(template_first))
    async with streaming.running() as runtime:
        topic, _, _ = runtime.resolve("/rpc_queue", Mode.PUBLISH)
        assert topic.address == "/rpc_queue"
        assert await runtime.publish("/rpc_queue", data={"numbers": [4, 3]}) is not None
        reply_topic, _, params = runtime.resolve("/amq.gen-1", Mode.SUBSCRIBE)
    assert reply_topic.address == "/{queue}" and params == {"queue": "amq.gen-1"}


# -- channels without operations, several channels on one address -----------------------------


def test_a_channel_without_operation_is_an_import_error_not_a_crash() -> None:
    document = {"asyncapi": "3.0.0", "info": info(), "channels": {"a": {"address": "/a"}}}
    with pytest.raises(AsyncAPIImportError) as error:
        StreamingAPI.from_asyncapi(document)
    assert error.value.pointer == "/channels/a"
    assert "has no operation" in error.value.reason


def test_a_2x_channel_without_operation_is_an_import_error_too() -> None:
    document = {"asyncapi": "2.6.0", "info": info(), "channels": {"/a": {"description": "A"}}}
    with pytest.raises(AsyncAPIImportError) as error:
        StreamingAPI.from_asyncapi(document)
    assert error.value.pointer == "/channels/~1a"


def test_a_channel_without_operation_after_another_is_not_silently_dropped() -> None:
    document = {
        "asyncapi": "3.0.0",
        "info": info(),
        "channels": {
            "first": {
                "address": "/first",
                "description": "The first.",
                "messages": {"m": {"payload": {"type": "object"}}},
            },
            "second": {"address": "/second", "description": "The second."},
        },
        "operations": {"send": {"action": "send", "channel": {"$ref": "#/channels/first"}}},
    }
    with pytest.raises(AsyncAPIImportError) as error:
        StreamingAPI.from_asyncapi(document)
    assert error.value.pointer == "/channels/second"
    del document["channels"]["second"]
    topic = StreamingAPI.from_asyncapi(document).topics.get("/first")
    assert topic is not None and topic.description == "The first."


def one_socket() -> dict[str, Any]:
    """kraken (multiple channels): one socket, a channel per kind of message, all on ``/``."""

    def message(event: str) -> dict[str, Any]:
        return {
            "name": event,
            "payload": {
                "type": "object",
                "properties": {"event": {"const": event}, "reqid": {"type": "integer"}},
                "required": ["event"],
            },
        }

    return {
        "asyncapi": "3.0.0",
        "info": info(),
        "channels": {
            name: {"address": "/", "messages": {name: message(name)}}
            for name in ("ping", "pong", "heartbeat", "status", "subscribe", "subscribed")
        },
        "operations": {
            "receivePing": {
                "action": "receive",
                "channel": {"$ref": "#/channels/ping"},
                "reply": {"channel": {"$ref": "#/channels/pong"}},
            },
            "receiveSubscribe": {
                "action": "receive",
                "channel": {"$ref": "#/channels/subscribe"},
                "reply": {"channel": {"$ref": "#/channels/subscribed"}},
            },
            "heartbeat": {"action": "send", "channel": {"$ref": "#/channels/heartbeat"}},
            "status": {"action": "send", "channel": {"$ref": "#/channels/status"}},
        },
    }


def test_several_channels_on_one_address_are_one_topic_and_stay_apart_in_the_document() -> None:
    streaming = StreamingAPI.from_asyncapi(one_socket())
    assert [topic.address for topic in streaming.topics] == ["/"]
    document = get_asyncapi(streaming)
    assert set(document["channels"]) == {
        "ping",
        "pong",
        "heartbeat",
        "status",
        "subscribe",
        "subscribed",
    }
    operations = document["operations"]
    assert operations["heartbeat"]["channel"] == {"$ref": "#/channels/heartbeat"}
    assert operations["receiveSubscribe"]["reply"]["channel"] == {"$ref": "#/channels/subscribed"}
    assert operations["receiveSubscribe"]["reply"]["messages"] == [
        {"$ref": "#/channels/subscribed/messages/subscribed"}
    ]
    assert get_asyncapi(StreamingAPI.from_asyncapi(document)) == document
    # 2.6 has one channel per address and one operation per mode: they merge.
    two_six = get_asyncapi(streaming, version="2.6.0")["channels"]["/"]
    assert [m["name"] for m in two_six["publish"]["message"]["oneOf"]] == ["ping", "subscribe"]


async def test_each_request_gets_the_reply_of_its_own_operation() -> None:
    streaming = StreamingAPI.from_asyncapi(one_socket())

    @streaming.publish("/")
    async def answer(event: dict[str, Any]) -> dict[str, Any]:
        kind = "pong" if event["event"] == "ping" else "subscribed"
        return {"event": kind, "reqid": event.get("reqid")}

    async with streaming.running() as runtime:
        _, pong = await runtime.request("/", data={"event": "ping", "reqid": 1})
        _, subscribed = await runtime.request("/", data={"event": "subscribe", "reqid": 2})
        await streaming.emit("/", {"event": "heartbeat"})
        await streaming.emit("/", {"event": "status"})
    assert pong == b'{"event":"pong","reqid":1}'
    assert subscribed == b'{"event":"subscribed","reqid":2}'


def test_channels_on_one_address_with_different_broker_channels_are_refused() -> None:
    document = one_socket()
    document["channels"]["status"]["x-fastapi-streaming"] = {"channel": "status"}
    with pytest.raises(AsyncAPIImportError) as error:
        StreamingAPI.from_asyncapi(document)
    assert error.value.pointer == "/channels/status/address"
    assert "'ping'" in error.value.reason


def test_several_operations_of_one_action_on_one_channel_are_kept() -> None:
    """kraken (message filter in reply): two sends and two receives on one channel."""
    document = one_socket()
    document["channels"] = {
        "exchange": {
            "address": "/",
            "messages": {
                name: channel["messages"][name] for name, channel in document["channels"].items()
            },
        }
    }
    for operation in document["operations"].values():
        name = operation["channel"]["$ref"].rsplit("/", 1)[-1]
        operation["channel"] = {"$ref": "#/channels/exchange"}
        operation["messages"] = [{"$ref": f"#/channels/exchange/messages/{name}"}]
        if "reply" in operation:
            answer = operation["reply"]["channel"]["$ref"].rsplit("/", 1)[-1]
            operation["reply"] = {
                "channel": {"$ref": "#/channels/exchange"},
                "messages": [{"$ref": f"#/channels/exchange/messages/{answer}"}],
            }
    streaming = StreamingAPI.from_asyncapi(document)
    topic = streaming.topics.get("/")
    assert topic is not None and topic.subscribe is not None and topic.publish is not None
    assert [part.key for part in topic.subscribe.parts] == ["heartbeat", "status"]
    exported = get_asyncapi(streaming)
    for key, operation in document["operations"].items():
        assert exported["operations"][key]["messages"] == operation["messages"]
        assert exported["operations"][key].get("reply") == operation.get("reply")


# -- security ---------------------------------------------------------------------------------


def streetlights(version: str = "3.0.0") -> dict[str, Any]:
    """streetlights: servers that require credentials; ``turnOn`` requires only OAuth2."""
    schemes = {
        "saslScram": {"type": "scramSha256", "description": "User and password."},
        "oauth": {
            "type": "oauth2",
            "flows": {
                "clientCredentials": {
                    "tokenUrl": "https://auth.example.com/token",
                    "availableScopes": {"streetlights:on": "Switch lights on."},
                }
            },
        },
    }
    message = {"name": "turnOnOff", "payload": {"type": "object"}}
    return {
        "asyncapi": version,
        "info": info(),
        "servers": {
            "test": {
                "host": "broker.example.com:9092",
                "protocol": "kafka-secure",
                "security": [{"$ref": "#/components/securitySchemes/saslScram"}],
            }
        },
        "channels": {
            "lightTurnOn": {"address": "lights.on", "messages": {"turnOn": message}},
            "lightMeasured": {"address": "lights.measured", "messages": {"measured": message}},
        },
        "operations": {
            "turnOn": {
                "action": "receive",
                "channel": {"$ref": "#/channels/lightTurnOn"},
                "security": [{**schemes["oauth"], "scopes": ["streetlights:on"]}],
            },
            "measured": {"action": "send", "channel": {"$ref": "#/channels/lightMeasured"}},
        },
        "components": {"securitySchemes": schemes},
    }


def test_server_security_makes_every_client_authenticate(
    caplog: pytest.LogCaptureFixture,
) -> None:
    streaming = StreamingAPI.from_asyncapi(streetlights())
    assert streaming.access.require_auth is True
    assert "requires authentication and the API has no authorizer" in caplog.text
    assert streaming.server_security == {"saslScram": []}
    document = get_asyncapi(streaming)
    for server in document["servers"].values():
        assert server["security"] == [{"$ref": "#/components/securitySchemes/saslScram"}]
    # An operation without security of its own says nothing: the servers' requirement applies.
    assert "security" not in document["operations"]["measured"]


def test_the_round_trip_keeps_an_operations_security() -> None:
    streaming = StreamingAPI.from_asyncapi(streetlights())
    turn_on = streaming.topics.get("/lights.on")
    assert turn_on is not None and turn_on.publish is not None
    assert turn_on.publish.security == ("oauth",)
    assert turn_on.publish.scopes == ("streetlights:on",)
    [requirement] = get_asyncapi(streaming)["operations"]["turnOn"]["security"]
    assert requirement["type"] == "oauth2" and requirement["scopes"] == ["streetlights:on"]
    assert get_asyncapi(StreamingAPI.from_asyncapi(get_asyncapi(streaming))) == get_asyncapi(
        streaming
    )
    two_six = get_asyncapi(streaming, version="2.6.0")
    operation = two_six["channels"]["/lights.on"]["publish"]
    assert operation["security"] == [{"oauth": ["streetlights:on"]}]
    assert two_six["servers"]["websocket"]["security"] == [{"saslScram": []}]


def test_an_operation_that_names_a_scheme_without_scopes_still_needs_credentials() -> None:
    document = streetlights()
    del document["servers"]
    document["operations"]["measured"]["security"] = [
        {"$ref": "#/components/securitySchemes/saslScram"}
    ]
    streaming = StreamingAPI.from_asyncapi(document)
    assert streaming.access.require_auth is False
    measured = streaming.topics.get("/lights.measured")
    assert measured is not None and measured.subscribe is not None
    assert measured.subscribe.scopes == () and measured.subscribe.security == ("saslScram",)


def test_server_security_cannot_be_given_without_require_auth() -> None:
    with pytest.raises(ValueError, match="require_auth=True"):
        StreamingAPI(server_security={"apiKey": []})


# -- what the round trip keeps, and what it says it does not ----------------------------------


def slack_like() -> dict[str, Any]:
    """slack-rtm: one operation with several named messages; headers, traits, correlation ids."""
    return {
        "asyncapi": "3.0.0",
        "info": info(),
        "channels": {
            "events": {
                "address": "/events/{team}",
                "parameters": {"team": {"description": "The team's id.", "enum": ["a", "b"]}},
                "bindings": {"ws": {"method": "POST"}},
                "messages": {
                    "hello": {
                        "name": "hello",
                        "summary": "First event upon connection.",
                        "payload": {"type": "object", "properties": {"type": {"const": "hello"}}},
                        "traits": [{"$ref": "#/components/messageTraits/common"}],
                    },
                    "goodbye": {
                        "name": "goodbye",
                        "summary": "The server is about to close the connection.",
                        "payload": {"type": "object", "properties": {"type": {"const": "bye"}}},
                        "correlationId": {"$ref": "#/components/correlationIds/byType"},
                    },
                },
            }
        },
        "operations": {
            "receiveEvents": {
                "action": "send",
                "channel": {"$ref": "#/channels/events"},
                "traits": [{"bindings": {"kafka": {"clientId": {"type": "string"}}}}],
            }
        },
        "components": {
            "messageTraits": {
                "common": {
                    "headers": {"type": "object", "properties": {"x-id": {"type": "integer"}}}
                }
            },
            "correlationIds": {"byType": {"location": "$message.payload#/type"}},
        },
    }


def test_several_messages_of_one_operation_keep_their_names_and_summaries() -> None:
    streaming = StreamingAPI.from_asyncapi(slack_like())
    document = get_asyncapi(streaming)
    messages = document["channels"]["events"]["messages"]
    assert list(messages) == ["hello", "goodbye"]
    assert messages["hello"]["summary"] == "First event upon connection."
    assert messages["goodbye"]["name"] == "goodbye"
    assert document["operations"]["receiveEvents"]["messages"] == [
        {"$ref": "#/channels/events/messages/hello"},
        {"$ref": "#/channels/events/messages/goodbye"},
    ]
    # Headers (from a trait) and correlation ids are kept as they are.
    assert messages["hello"]["headers"]["properties"] == {"x-id": {"type": "integer"}}
    assert messages["goodbye"]["correlationId"] == {"location": "$message.payload#/type"}
    parameter = document["channels"]["events"]["parameters"]["team"]
    assert parameter["description"] == "The team's id." and parameter["enum"] == ["a", "b"]
    two_six = get_asyncapi(streaming, version="2.6.0")
    one_of = two_six["channels"]["/events/{team}"]["subscribe"]["message"]["oneOf"]
    assert [message["name"] for message in one_of] == ["hello", "goodbye"]


async def test_an_event_matching_any_one_of_the_messages_is_accepted() -> None:
    streaming = StreamingAPI.from_asyncapi(slack_like())
    async with streaming.running():
        await streaming.emit("/events/a", {"type": "hello"})
        await streaming.emit("/events/a", {"type": "bye"})


def test_what_is_not_kept_is_listed_on_the_api_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    streaming = StreamingAPI.from_asyncapi(slack_like())
    listed = {warning.pointer: warning.reason for warning in streaming.import_warnings}
    assert listed == {
        "/channels/events/bindings": "the channel's bindings",
        "/operations/receiveEvents/bindings": "the operation's bindings",
    }
    assert "/operations/receiveEvents/bindings: the operation's bindings" in caplog.text


def test_the_apis_own_documents_import_without_warnings() -> None:
    streaming = StreamingAPI.from_asyncapi(slack_like())
    again = StreamingAPI.from_asyncapi(get_asyncapi(streaming))
    assert again.import_warnings == []


# -- request/reply ----------------------------------------------------------------------------


def kraken_like() -> dict[str, Any]:
    """kraken: ``ping`` is received on a channel and answered with ``pong`` on the same one."""
    return {
        "asyncapi": "3.0.0",
        "info": info(),
        "channels": {
            "exchange": {
                "address": "/",
                "messages": {
                    "ping": {
                        "payload": {
                            "type": "object",
                            "properties": {
                                "event": {"const": "ping"},
                                "reqid": {"type": "integer"},
                            },
                            "required": ["event"],
                        }
                    },
                    "pong": {
                        "payload": {
                            "type": "object",
                            "properties": {
                                "event": {"const": "pong"},
                                "reqid": {"type": "integer"},
                            },
                            "required": ["event"],
                        }
                    },
                },
            }
        },
        "operations": {
            "receivePing": {
                "action": "receive",
                "channel": {"$ref": "#/channels/exchange"},
                "messages": [{"$ref": "#/channels/exchange/messages/ping"}],
                "reply": {
                    "channel": {"$ref": "#/channels/exchange"},
                    "messages": [{"$ref": "#/channels/exchange/messages/pong"}],
                },
            }
        },
    }


async def test_an_imported_reply_is_what_the_attached_handler_returns() -> None:
    streaming = StreamingAPI.from_asyncapi(kraken_like())

    @streaming.publish("/")
    async def ping(event: dict[str, Any]) -> dict[str, Any]:
        return {"event": "pong", "reqid": event.get("reqid")}

    topic = streaming.topics.get("/")
    assert topic is not None and topic.publish is not None and topic.publish.reply is not None
    async with streaming.running() as runtime:
        event, reply = await runtime.request("/", data={"event": "ping", "reqid": 42})
    assert event is not None and reply == b'{"event":"pong","reqid":42}'


def test_an_imported_reply_round_trips() -> None:
    document = get_asyncapi(StreamingAPI.from_asyncapi(kraken_like()))
    assert document["operations"]["receivePing"]["reply"] == {
        "channel": {"$ref": "#/channels/exchange"},
        "messages": [{"$ref": "#/channels/exchange/messages/pong"}],
    }
    assert document["operations"]["receivePing"]["messages"] == [
        {"$ref": "#/channels/exchange/messages/ping"}
    ]


def test_a_reply_on_a_send_operation_is_refused() -> None:
    document = kraken_like()
    document["operations"]["receivePing"]["action"] = "send"
    with pytest.raises(AsyncAPIImportError) as error:
        StreamingAPI.from_asyncapi(document)
    assert error.value.pointer == "/operations/receivePing/reply"


# -- references to other files ----------------------------------------------------------------


def write_split_document(folder: Path) -> Path:
    """social-media: messages and parameters in ``../common/``, schemas beside them."""
    (folder / "common").mkdir()
    (folder / "service").mkdir()
    (folder / "common" / "messages.yaml").write_text(
        yaml.safe_dump(
            {"commentLiked": {"payload": {"$ref": "./schemas.yaml#/commentLikedPayload"}}}
        )
    )
    (folder / "common" / "schemas.yaml").write_text(
        yaml.safe_dump(
            {
                "commentLikedPayload": {
                    "type": "object",
                    "properties": {"commentId": {"$ref": "#/commentId"}},
                },
                "commentId": {"type": "string", "description": "The comment's id."},
            }
        )
    )
    (folder / "common" / "parameters.yaml").write_text(
        yaml.safe_dump({"commentId": {"description": "ID of the comment"}})
    )
    path = folder / "service" / "asyncapi.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "asyncapi": "3.0.0",
                "info": info(),
                "channels": {
                    "commentLiked": {
                        "address": "comment/{commentId}/liked",
                        "parameters": {
                            "commentId": {"$ref": "../common/parameters.yaml#/commentId"}
                        },
                        "messages": {
                            "commentLiked": {"$ref": "../common/messages.yaml#/commentLiked"}
                        },
                    }
                },
                "operations": {
                    "onCommentLiked": {
                        "action": "receive",
                        "channel": {"$ref": "#/channels/commentLiked"},
                    }
                },
            }
        )
    )
    return path


def test_relative_references_resolve_against_the_documents_own_location(
    tmp_path: Path,
) -> None:
    streaming = StreamingAPI.from_asyncapi(write_split_document(tmp_path))
    document = get_asyncapi(streaming)
    channel = document["channels"]["commentLiked"]
    assert channel["parameters"]["commentId"]["description"] == "ID of the comment"
    payload = channel["messages"]["commentLiked"]["payload"]
    assert payload["properties"]["commentId"]["description"] == "The comment's id."


def test_relative_references_need_a_path_to_resolve_against(tmp_path: Path) -> None:
    document = yaml.safe_load(write_split_document(tmp_path).read_text())
    with pytest.raises(AsyncAPIImportError) as error:
        StreamingAPI.from_asyncapi(document)
    assert "import the document from its file" in error.value.reason


def test_remote_references_are_refused_unless_a_resolver_is_given() -> None:
    document = copy.deepcopy(kraken_like())
    url = "https://schemas.example.com/ping.json"
    document["channels"]["exchange"]["messages"]["ping"]["payload"] = {"$ref": url}
    with pytest.raises(AsyncAPIImportError) as error:
        StreamingAPI.from_asyncapi(document)
    assert error.value.pointer == "/channels/exchange/messages/ping/payload/$ref"
    assert "resolver=" in error.value.reason
    asked: list[str] = []

    def resolver(address: str) -> Any:
        asked.append(address)
        return {"type": "object", "properties": {"event": {"const": "ping"}}}

    streaming = StreamingAPI.from_asyncapi(document, resolver=resolver)
    assert asked == [url]
    assert streaming.topics.get("/") is not None


async def test_without_a_handler_a_reply_topic_publishes_and_answers_nothing() -> None:
    streaming = StreamingAPI.from_asyncapi(kraken_like())
    async with streaming.running() as runtime:
        event, reply = await runtime.request("/", data={"event": "ping"})
    assert event is not None and reply is None


@pytest.mark.node
def test_every_document_made_from_these_constructs_is_valid(tmp_path: Path) -> None:
    from tests.support.asyncapi_parser import parse_documents

    builders = {
        "rpc": rpc_server,
        "one-socket": one_socket,
        "streetlights": streetlights,
        "slack": slack_like,
        "kraken": kraken_like,
    }
    apis = {name: StreamingAPI.from_asyncapi(build()) for name, build in builders.items()}
    apis["split"] = StreamingAPI.from_asyncapi(write_split_document(tmp_path))
    documents = {
        f"{name}-{version}": get_asyncapi(api, version=version)
        for name, api in apis.items()
        for version in ("3.0.0", "3.1.0", "2.6.0")
    }
    results = parse_documents(documents)
    assert {name: found["errors"] for name, found in results.items()} == {
        name: [] for name in documents
    }


def test_the_documents_server_security_can_be_dropped_only_explicitly() -> None:
    with pytest.raises(ValueError, match="server_security=None"):
        StreamingAPI.from_asyncapi(streetlights(), require_auth=False)
    streaming = StreamingAPI.from_asyncapi(streetlights(), require_auth=False, server_security=None)
    assert streaming.access.require_auth is False
    assert "security" not in get_asyncapi(streaming)["servers"]["websocket"]
