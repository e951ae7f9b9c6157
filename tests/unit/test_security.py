"""Scope checks, RFC 6750 challenges, log redaction and the authorizer plugin hook."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from starlette.requests import HTTPConnection

from fastapi_streaming import Forbidden, Mode, StreamingAPI, Unauthorized, hookimpl
from fastapi_streaming.plugins import get_plugin_manager
from fastapi_streaming.security import (
    AccessControl,
    InvalidRequest,
    JWTAuthorizer,
    Principal,
    RedactTokens,
    UnknownAuthorizerError,
    create_authorizer,
    invalid_token,
    redact,
    required_scopes,
)
from fastapi_streaming.security.challenges import challenge


def connection(headers: dict[str, str] | None = None, query: str = "") -> HTTPConnection:
    raw = [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
    return HTTPConnection({"type": "http", "headers": raw, "query_string": query.encode()})


class StaticAuthorizer:
    """Grants a fixed principal to clients that send ``X-User``; refuses ``X-User: bad``."""

    def __init__(self, scopes: set[str]) -> None:
        self.scopes = frozenset(scopes)
        self.calls = 0

    async def authenticate(self, connection: HTTPConnection) -> Principal | None:
        self.calls += 1
        user = connection.headers.get("x-user")
        if user is None:
            return None
        if user == "bad":
            raise invalid_token("The access token is malformed.")
        return Principal(subject=user, scopes=self.scopes)


def streaming_with(authorizer: Any, **options: Any) -> StreamingAPI:
    streaming = StreamingAPI(authorizer=authorizer, **options)

    @streaming.subscribe("/stocks/{symbol}", scopes=["stocks:read"])
    async def quotes(event: dict[str, Any]) -> dict[str, Any]:
        return event

    @streaming.subscribe("/orders", scopes=["orders:read", "stocks:read"])
    async def orders(event: dict[str, Any]) -> dict[str, Any]:
        return event

    @streaming.subscribe("/news")
    async def news(event: dict[str, Any]) -> dict[str, Any]:
        return event

    return streaming


def accesses(streaming: StreamingAPI, *addresses: str) -> list[Any]:
    found = []
    for address in addresses:
        topic = streaming.topics.get(address)
        assert topic is not None
        found.append((topic, Mode.SUBSCRIBE))
    return found


def test_required_scopes_are_every_scope_once_in_order() -> None:
    streaming = streaming_with(None)
    both = accesses(streaming, "/stocks/{symbol}", "/orders", "/news")
    assert required_scopes(both) == ["stocks:read", "orders:read"]


async def test_a_multi_topic_request_is_refused_whole_naming_what_is_missing() -> None:
    streaming = streaming_with(StaticAuthorizer({"stocks:read"}))
    with pytest.raises(Forbidden) as refused:
        await streaming.authorize(
            connection({"X-User": "ann"}), accesses(streaming, "/stocks/{symbol}", "/orders")
        )
    assert refused.value.detail == (
        "The access token lacks the scopes orders:read; this request needs stocks:read orders:read."
    )
    assert refused.value.headers["WWW-Authenticate"].endswith('scope="stocks:read orders:read"')
    context = await streaming.authorize(
        connection({"X-User": "ann"}), accesses(streaming, "/stocks/{symbol}")
    )
    assert [type(item) for item in context] == [Principal]


async def test_public_topics_are_open_unless_auth_is_required() -> None:
    open_api = streaming_with(StaticAuthorizer(set()))
    assert await open_api.authorize(connection(), accesses(open_api, "/news")) == []
    closed = streaming_with(StaticAuthorizer(set()), require_auth=True)
    with pytest.raises(Unauthorized) as refused:
        await closed.authorize(connection(), accesses(closed, "/news"))
    assert refused.value.headers == {"WWW-Authenticate": "Bearer"}
    with pytest.raises(Unauthorized):
        await closed.authorize(connection(), [])  # the multiplexed socket's handshake


async def test_a_bad_token_opens_the_multiplexed_socket_but_nothing_on_it() -> None:
    streaming = streaming_with(StaticAuthorizer(set()))
    bad = connection({"X-User": "bad"})
    assert await streaming.authorize(bad, []) == []
    with pytest.raises(Unauthorized):
        await streaming.authorize(bad, accesses(streaming, "/news"))


async def test_scoped_topics_without_an_authorizer_refuse_everyone() -> None:
    streaming = streaming_with(None)
    with pytest.raises(Unauthorized):
        await streaming.authorize(connection(), accesses(streaming, "/stocks/{symbol}"))
    assert await streaming.authorize(connection(), accesses(streaming, "/news")) == []


async def test_a_connection_is_authenticated_once() -> None:
    authorizer = StaticAuthorizer({"stocks:read", "orders:read"})
    control = AccessControl([authorizer])
    socket = connection({"X-User": "ann"})
    first = await control.principal(socket)
    assert await control.principal(socket) is first
    assert authorizer.calls == 1


async def test_several_authorizers_first_principal_wins_else_first_refusal() -> None:
    gateway = JWTAuthorizer(key="a-secret-that-is-long-enough-for-hs256")
    local = StaticAuthorizer({"stocks:read"})
    control = AccessControl([gateway, local])
    principal = await control.principal(connection({"X-User": "ann"}))
    assert principal is not None and principal.subject == "ann"
    with pytest.raises(Unauthorized) as refused:
        await AccessControl([gateway, local]).principal(
            connection({"Authorization": "Bearer nonsense", "X-User": "bad"})
        )
    assert refused.value.detail == "The access token is malformed."


def test_challenges_quote_their_parameters() -> None:
    assert challenge() == "Bearer"
    assert challenge(realm="market", error="invalid_token", description='say "hi"\\') == (
        'Bearer realm="market", error="invalid_token", error_description="say hi"'
    )
    assert challenge(error="insufficient_scope", scopes=["a", "b"]) == (
        'Bearer error="insufficient_scope", scope="a b"'
    )


def test_two_tokens_in_one_request_are_refused() -> None:
    from fastapi_streaming.security import bearer_token

    with pytest.raises(InvalidRequest):
        bearer_token(connection({"Authorization": "Bearer a"}, "access_token=b"))
    with pytest.raises(InvalidRequest):
        bearer_token(connection(query="access_token=a&access_token=b"))
    assert bearer_token(connection({"Authorization": "Basic YTpi"})) is None


def test_redaction_goes_by_the_decoded_parameter_name() -> None:
    assert redact("/s?access%5Ftoken=abc&x=1") == "/s?access%5Ftoken=[redacted]&x=1"
    assert redact("/s?%61ccess%5ftoken=abc") == "/s?%61ccess%5ftoken=[redacted]"
    assert redact("/s?access+token=abc") == "/s?access+token=abc"


def test_redaction_masks_url_passwords_and_secret_parameters_in_logs() -> None:
    record = logging.LogRecord(
        "fastapi_streaming.broker",
        logging.WARNING,
        __file__,
        1,
        "Lost the broker at %s (%r)",
        ("redis://:hunter22@127.0.0.1:6379/0", ConnectionError("kafka://h?sasl_password=pw42")),
        None,
    )
    RedactTokens().filter(record)
    message = record.getMessage()
    assert "hunter22" not in message and "pw42" not in message
    assert "redis://:[redacted]@127.0.0.1:6379/0" in message


def test_redaction_scrubs_every_access_token_value() -> None:
    assert redact("/streams/sse?access_token=abc.def&topic=/a") == (
        "/streams/sse?access_token=[redacted]&topic=/a"
    )
    assert redact("/x?topic=/a&access_token=abc") == "/x?topic=/a&access_token=[redacted]"
    assert redact("/x?my_access_token=abc") == "/x?my_access_token=abc"
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s"',
        ("127.0.0.1", "GET", "/s?access_token=secret"),
        None,
    )
    assert RedactTokens().filter(record)
    assert "secret" not in record.getMessage()


def test_authorizers_come_from_the_plugin_hook() -> None:
    manager = get_plugin_manager()
    built = create_authorizer("jwt", manager, key="a-secret-that-is-long-enough-for-hs256")
    assert isinstance(built, JWTAuthorizer)

    class Plugin:
        @hookimpl
        def fastapi_streaming_authorizers(self) -> dict[str, Any]:
            return {"static": lambda **options: StaticAuthorizer(set(options["scopes"]))}

    manager.register(Plugin())
    static = create_authorizer("static", manager, scopes=["a"])
    assert isinstance(static, StaticAuthorizer) and static.scopes == {"a"}
    with pytest.raises(UnknownAuthorizerError, match="installed: fastapi-users, jwt, static"):
        create_authorizer("keycloak", manager)


def test_the_former_names_of_the_authenticator_classes_still_work() -> None:
    from fastapi_streaming.security import (
        Authenticator,
        Authorizer,
        BearerAuthenticator,
        BearerAuthorizer,
    )

    assert Authorizer is Authenticator
    assert BearerAuthorizer is BearerAuthenticator
