"""The short examples of the guide, each a file of docs_src/, do what their pages say."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys
import time
from typing import Any

import jwt
import pluggy
import pytest
from broadcaster import BroadcastBackend
from fastapi.testclient import TestClient

from docs_src.asyncapi import cdn
from docs_src.getting_started import app as getting_started
from docs_src.getting_started import emit
from docs_src.plugins import interface, mybroker_app
from docs_src.security import api_keys, keycloak_plugin, principal, scopes, users_app
from docs_src.topics import channel
from docs_src.transports import ws_client
from docs_src.websub import networks
from docs_src.websub import settings as websub_settings
from fastapi_streaming.asyncapi.docs import CDN_JS_URL
from fastapi_streaming.plugins import UnknownBackendError
from fastapi_streaming.security import BearerAuthenticator
from fastapi_streaming.security import plugins as security_plugins
from fastapi_streaming.testing import BackendConformance, stream_events
from tests.support.server import ServerProcess

SECRET = "change-me-to-a-32-byte-secret-key"


def token(*granted: str) -> dict[str, str]:
    claims = {"sub": "ann", "scope": " ".join(granted), "exp": int(time.time()) + 600}
    return {"Authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}


def served(streaming: Any) -> TestClient:
    from fastapi import FastAPI

    app = FastAPI()
    streaming.init_app(app)
    return TestClient(app)


def test_the_docs_page_can_load_its_bundle_from_the_cdn() -> None:
    with served(cdn.streaming) as client:
        assert CDN_JS_URL in client.get("/asyncapi").text


def test_server_code_emits_to_subscribers() -> None:
    with TestClient(getting_started.app) as client:
        with stream_events(client, "/streams/sse/stocks/AAPL") as events:
            client.portal.call(emit.publish_a_quote)  # type: ignore[union-attr]
            assert next(events).json() == {"symbol": "AAPL", "price": 187.12}


@pytest.mark.parametrize("module", ["amqp_app", "mqtt_app", "nats_app"])
async def test_the_plugin_pages_apps_connect_to_their_brokers(module: str) -> None:
    streaming = importlib.import_module(f"docs_src.plugins.{module}").streaming
    async with streaming.running() as runtime:
        assert runtime.broker.connected


@pytest.mark.redis
async def test_the_redis_example_connects() -> None:
    from docs_src.brokers import redis_broker

    async with redis_broker.streaming.running() as runtime:
        assert runtime.broker.connected


async def test_an_uninstalled_scheme_fails_when_the_app_starts() -> None:
    with pytest.raises(UnknownBackendError, match="mybroker"):
        async with mybroker_app.streaming.running():
            pass


def test_the_backend_interface_shown_is_broadcasters() -> None:
    for name in ("connect", "disconnect", "subscribe", "unsubscribe", "publish", "next_published"):
        shown, actual = getattr(interface.MyBackend, name), getattr(BroadcastBackend, name)
        assert inspect.iscoroutinefunction(shown) == inspect.iscoroutinefunction(actual), name
        shown_count = len(inspect.signature(shown).parameters)
        assert shown_count == len(inspect.signature(actual).parameters), name


def test_the_mqtt_suite_shown_is_a_conformance_suite() -> None:
    from docs_src.plugins.test_mqtt_backend import TestMQTTBackend

    assert issubclass(TestMQTTBackend, BackendConformance)
    assert TestMQTTBackend.url == "mqtt://127.0.0.1:1883"


def test_scopes_guard_each_mode() -> None:
    with served(scopes.streaming) as client:
        order = {"symbol": "AAPL", "quantity": 1}
        with stream_events(client, "/streams/sse/orders", headers=token("orders:read")) as book:
            answer = client.post("/streams/publish/orders", json=order, headers=token())
            assert answer.status_code == 403
            placed = client.post(
                "/streams/publish/orders", json=order, headers=token("orders:write")
            )
            assert placed.status_code == 202
            assert next(book).json() == order
        with stream_events(client, "/streams/sse/stocks/AAPL", headers=token()) as refused:
            assert refused.status_code == 403


def test_an_api_key_authorizer() -> None:
    with TestClient(api_keys.app) as client:
        good = {"X-API-Key": "key-of-the-dashboard"}
        with stream_events(client, "/streams/sse/stocks/AAPL", headers=good) as events:
            assert events.status_code == 200
        with stream_events(client, "/streams/sse/stocks/AAPL", headers={"X-API-Key": "x"}) as bad:
            assert bad.status_code == 401
        with stream_events(client, "/streams/sse/stocks/AAPL") as anonymous:
            assert anonymous.status_code == 401


def test_the_fastapi_users_wiring() -> None:
    paths = set(users_app.app.openapi()["paths"])
    assert {"/auth/register", "/auth/jwt/login"} <= paths
    assert users_app.streaming.access.authorizers[0] is users_app.authorizer


def test_a_plugin_authorizer_is_picked_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plugin is registered as its entry point would register it once installed."""
    make_manager = security_plugins._authorizer_manager

    def manager_with_the_plugin() -> pluggy.PluginManager:
        manager = make_manager()
        manager.register(keycloak_plugin)
        return manager

    monkeypatch.setattr(security_plugins, "_authorizer_manager", manager_with_the_plugin)
    sys.modules.pop("docs_src.security.keycloak_app", None)
    from docs_src.security import keycloak_app

    authorizer = keycloak_app.authorizer
    assert isinstance(authorizer, keycloak_plugin.KeycloakAuthorizer)
    assert isinstance(authorizer, BearerAuthenticator)
    assert authorizer.issuer == "https://sso.example.com/realms/market"


def test_publish_handlers_know_who_published() -> None:
    with served(principal.streaming) as client:
        order = {"symbol": "AAPL", "quantity": 2}
        placed = client.post("/streams/publish/orders", json=order, headers=token("orders:write"))
    assert placed.status_code == 202


def test_a_topic_on_an_existing_channel() -> None:
    topic = channel.streaming.topics.get("/stocks/{symbol}")
    assert topic is not None and topic.channel_for({"symbol": "AAPL"}) == "market.quotes.AAPL"


def test_websub_settings() -> None:
    hub = websub_settings.streaming.websub
    assert hub is not None and hub.settings.database_url.startswith("postgresql+asyncpg://")
    assert [str(network) for network in networks.settings.networks] == ["10.20.0.0/16"]


async def test_the_python_websocket_client_receives_quotes() -> None:
    with ServerProcess("docs_src.getting_started.app:app") as server:
        ws_client.URL = server.ws_url + "/streams/ws"
        received = asyncio.create_task(ws_client.main(count=2))
        await asyncio.sleep(0.5)  # it subscribes
        import httpx

        async with httpx.AsyncClient(base_url=server.url) as http:
            await http.post("/streams/publish/stocks/AAPL", json={"symbol": "AAPL", "price": 1})
        messages = await asyncio.wait_for(received, 10)
    assert '"type":"ack"' in messages[0] and '"type":"event"' in messages[1]


def test_the_readme_app_streams_what_is_published() -> None:
    from docs_src.readme.app import app

    with TestClient(app) as client, stream_events(client, "/streams/sse/stocks/AAPL") as events:
        quote = {"symbol": "AAPL", "price": 187.1}
        assert client.post("/streams/publish/stocks/AAPL", json=quote).status_code == 202
        assert next(events).json() == quote


def test_the_gc_freeze_example_freezes_the_heap_once_started() -> None:
    import gc

    from docs_src.deployment import gc_freeze

    try:
        with TestClient(gc_freeze.app):
            frozen = gc.get_freeze_count()
            assert gc_freeze.streaming.is_running
    finally:
        gc.unfreeze()  # the other tests' objects stay collectable
    assert frozen > 10_000  # the app and everything imported


def test_an_import_lists_what_it_did_not_keep(capsys: pytest.CaptureFixture[str]) -> None:
    sys.modules.pop("docs_src.asyncapi.import_warnings", None)
    importlib.import_module("docs_src.asyncapi.import_warnings")
    assert "/channels/lightTurnOn/bindings: the channel's bindings" in capsys.readouterr().out
