"""Generated input for the other parsers clients and operators reach: WebSub hub requests and
callback URLs, resume ids on a real server, and AsyncAPI documents to import.

The hub runs in process (TestClient, SQLite in a temporary directory); callbacks are IP
literals only, on addresses that are refused or local, so no request leaves this machine and
no name is looked up in DNS. Resume ids go to a real uvicorn server over real sockets.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from fastapi_streaming import StreamingAPI
from fastapi_streaming.asyncapi import AsyncAPIImportError
from fastapi_streaming.websub import WebSubSettings
from fastapi_streaming.websub.ssrf import CallbackGuard, CallbackRefused
from tests.apps.websub_app import make_app
from tests.fuzz.strategies import addresses, json_values
from tests.support.server import ServerProcess

HUB_STATUSES = {202, 400, 401, 403, 404, 405, 413, 415, 422, 429}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    database = tmp_path_factory.mktemp("hub") / "hub.sqlite3"
    settings = WebSubSettings(
        database_url=f"sqlite+aiosqlite:///{database}",
        allow_networks=("127.0.0.1/32",),
        rate_limit=100_000,
        verify_timeout=0.5,
    )
    app, _ = make_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(autouse=True)
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    with caplog.at_level(logging.ERROR):
        yield
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not logged, [r.getMessage() for r in logged]


# -- callback URLs -------------------------------------------------------------------------

#: Addresses no hub may call (loopback, private, link-local, reserved), as IPv4.
internal_ipv4 = st.sampled_from(
    ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "0.0.0.0/8"]
).flatmap(
    lambda net: st.integers(0, ipaddress.ip_network(net).num_addresses - 1).map(
        lambda offset, net=net: ipaddress.ip_network(net)[offset]  # type: ignore[misc]
    )
)


def embedded(v4: ipaddress.IPv4Address, form: str) -> ipaddress.IPv6Address:
    value = int(v4)
    prefixes = {
        "mapped": 0xFFFF << 32,
        "6to4": 0x2002 << 112 | value << 80,
        "compatible": 0,
        "nat64": 0x64FF9B << 96,
    }
    return ipaddress.IPv6Address(prefixes[form] | (0 if form == "6to4" else value))


@given(v4=internal_ipv4, form=st.sampled_from(["mapped", "6to4"]))
def test_ipv6_forms_of_internal_ipv4_addresses_are_refused(
    v4: ipaddress.IPv4Address, form: str
) -> None:
    guard = CallbackGuard(WebSubSettings())
    assert not guard.allowed(v4)
    assert not guard.allowed(embedded(v4, form)), embedded(v4, form)


@pytest.mark.parametrize("form", ["compatible", "nat64"])
def test_ipv4_compatible_and_nat64_forms_of_loopback_are_refused(form: str) -> None:
    guard = CallbackGuard(WebSubSettings())
    assert not guard.allowed(embedded(ipaddress.IPv4Address("127.0.0.1"), form))


@given(st.text(max_size=300))
def test_parsing_any_callback_gives_a_url_or_a_clear_refusal(callback: str) -> None:
    guard = CallbackGuard(WebSubSettings())
    try:
        url = guard.parse(callback)
    except CallbackRefused as refused:
        assert str(refused).startswith("hub.callback")
    else:
        assert url.scheme in ("http", "https") and url.host


# -- WebSub hub requests -------------------------------------------------------------------

ip_hosts = st.one_of(
    st.just("127.0.0.1"),
    internal_ipv4.map(str),
    st.sampled_from(["[::1]", "[fe80::1]", "[::ffff:10.0.0.1]", "[2002:7f00:1::]", "[fc00::1]"]),
)
callbacks = st.one_of(
    st.builds(
        "{}://{}{}{}".format,
        st.sampled_from(["http", "https", "ftp", "javascript", "file", ""]),
        ip_hosts,
        st.sampled_from(["", ":1", ":65535", ":0", ":99999", ":x"]),
        st.text(st.characters(codec="ascii", exclude_characters="#?/"), max_size=20).map(
            lambda tail: "/" + tail
        ),
    ),
    # Text without "://" is never a URL with a host: refused before any lookup.
    st.text(max_size=60).filter(lambda text: "://" not in text),
)
hub_fields = st.fixed_dictionaries(
    {},
    optional={
        "hub.mode": st.sampled_from(["subscribe", "unsubscribe", "publish", "denied", ""])
        | st.text(max_size=10),
        "hub.topic": addresses | st.text(max_size=60),
        "hub.callback": callbacks,
        "hub.secret": st.text(max_size=300),
        "hub.lease_seconds": st.integers(-(10**20), 10**20).map(str) | st.text(max_size=12),
    },
)


@given(
    form=hub_fields,
    extra=st.dictionaries(st.text(max_size=12), st.text(max_size=20), max_size=3),
)
def test_any_hub_request_gets_a_documented_answer(
    hub: TestClient, form: dict[str, str], extra: dict[str, str]
) -> None:
    answer = hub.post("/streams/websub/hub", data={**extra, **form})
    assert answer.status_code in HUB_STATUSES, (answer.status_code, answer.text)
    assert answer.text


@given(
    body=st.binary(max_size=400),
    content_type=st.sampled_from(
        [None, "application/x-www-form-urlencoded", "application/json", "multipart/form-data"]
    ),
)
def test_any_hub_request_body_gets_a_documented_answer(
    hub: TestClient, body: bytes, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    answer = hub.post("/streams/websub/hub", content=body, headers=headers)
    assert answer.status_code in HUB_STATUSES, (answer.status_code, answer.text)


# -- SSE resume ids, on a real server ------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess("tests.apps.core_app:app") as running:
        yield running


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


#: Printable ASCII without surrounding spaces: what an HTTP client can send as a header value.
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80).map(
    str.strip
)


@given(
    last_event_id=header_text | st.uuids().map(str) | st.uuids(version=1).map(str),
    multi=st.booleans(),
)
def test_any_last_event_id_opens_the_stream(
    http: httpx.Client, last_event_id: str, multi: bool
) -> None:
    """A resume id is a hint: any value opens the stream (with a gap if it cannot be honoured)."""
    path = "/streams/sse?topic=/alerts&topic=/stocks/AAPL" if multi else "/streams/sse/alerts"
    headers = {"Last-Event-ID": last_event_id}
    with http.stream("GET", path, headers=headers) as answer:
        assert answer.status_code == 200, answer.read()
        assert answer.headers["content-type"].startswith("text/event-stream")


@given(topics=st.lists(addresses, max_size=4), resume=header_text)
def test_any_topic_list_gets_a_stream_or_a_documented_error(
    http: httpx.Client, topics: list[str], resume: str
) -> None:
    params = [("topic", t) for t in topics] + [("last_event_id", resume)]
    with http.stream("GET", "/streams/sse", params=params) as answer:
        assert answer.status_code in {200, 400, 404, 405}, answer.read()
        if answer.status_code != 200:
            assert answer.read() and answer.json()["detail"]


# -- AsyncAPI import -----------------------------------------------------------------------

schemas = st.one_of(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["object", "string", "integer", "array", "nonsense"])},
        optional={"properties": st.dictionaries(st.text(max_size=6), st.just({}), max_size=3)},
    ),
    json_values,
)


@st.composite
def asyncapi_documents(draw: st.DrawFn) -> dict[str, Any]:
    """Documents near the shape of AsyncAPI 3 and 2, with every part possibly wrong."""
    names = draw(st.lists(st.text(max_size=8), min_size=0, max_size=3, unique=True))
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for name in names:
        address = draw(
            addresses | st.sampled_from(["/q/{a}", "/q/{a}/{b}", "{x}", ""]) | json_values
        )
        params = draw(
            st.dictionaries(
                st.sampled_from(["a", "b", "x", "z"]), st.just({}) | json_values, max_size=2
            )
        )
        channels[name] = {
            "address": address,
            "parameters": params,
            "messages": {"m": {"payload": draw(schemas)}},
        }
        operations[f"op-{name}"] = {
            "action": draw(st.sampled_from(["send", "receive", "publish", 7])),
            "channel": {"$ref": draw(st.sampled_from([f"#/channels/{name}", "#/nowhere", "x"]))},
            "messages": [{"$ref": f"#/channels/{name}/messages/m"}],
        }
    document: dict[str, Any] = {
        "asyncapi": draw(st.sampled_from(["3.0.0", "3.1.0", "2.6.0", "1.0.0", "x"]) | json_values),
        "info": draw(st.just({"title": "Fuzzed", "version": "1"}) | json_values),
        "channels": channels,
        "operations": operations,
    }
    for key in draw(st.lists(st.sampled_from(list(document)), max_size=2)):
        document[key] = draw(json_values)
    return document


@given(asyncapi_documents())
def test_importing_any_document_gives_an_api_or_an_import_error(document: dict[str, Any]) -> None:
    try:
        streaming = StreamingAPI.from_asyncapi(document)
    except AsyncAPIImportError as error:
        assert error.pointer.startswith("/") and error.reason
    else:
        assert len(streaming.topics) <= len(document.get("channels") or {})


@given(st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_importing_any_text_gives_an_api_or_an_import_error(
    tmp_path_factory: Any, text: str
) -> None:
    path = Path(tmp_path_factory.mktemp("doc")) / "doc.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(AsyncAPIImportError):
        StreamingAPI.from_asyncapi(path)


def test_a_channel_that_no_operation_uses_is_an_import_error() -> None:
    """Found by the property above: such a channel raised UnboundLocalError on import."""
    document = {
        "asyncapi": "3.0.0",
        "info": {"title": "Unused channel", "version": "1"},
        "channels": {
            "idle": {"address": "/idle"},
            "used": {"address": "/used", "messages": {"m": {"payload": {"type": "object"}}}},
        },
        "operations": {"op": {"action": "send", "channel": {"$ref": "#/channels/used"}}},
    }
    with pytest.raises(AsyncAPIImportError) as raised:
        StreamingAPI.from_asyncapi(document)
    assert raised.value.pointer == "/channels/idle"


def test_two_channels_at_one_address_with_one_mode_become_one_topic() -> None:
    """Found by the property above: this raised a bare ValueError from declaring the topic."""
    message = {"m": {"payload": {"type": "object"}}}
    document = {
        "asyncapi": "3.0.0",
        "info": {"title": "Twice", "version": "1"},
        "channels": {
            "first": {"address": "/same", "messages": message},
            "second": {"address": "/same", "messages": message},
        },
        "operations": {
            "a": {"action": "send", "channel": {"$ref": "#/channels/first"}},
            "b": {"action": "send", "channel": {"$ref": "#/channels/second"}},
        },
    }
    streaming = StreamingAPI.from_asyncapi(document)
    assert [topic.address for topic in streaming.topics] == ["/same"]
