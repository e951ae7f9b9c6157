"""The WebSub hub's small parts: settings, address checks, request reading, signing, limits."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import subprocess
import sys
from pathlib import Path

import pytest

from fastapi_streaming import StreamingAPI, WebSubSettings
from fastapi_streaming.websub.delivery import signature
from fastapi_streaming.websub.intent import HubError, IntentReader, parse_form, topic_address
from fastapi_streaming.websub.outbound import with_query
from fastapi_streaming.websub.ratelimit import RateLimiter
from fastapi_streaming.websub.ssrf import CallbackGuard, CallbackRefused, decode_unreserved


def test_leases_are_clamped_into_the_configured_bounds() -> None:
    settings = WebSubSettings(lease_min=60, lease_default=600, lease_max=3600)
    assert settings.clamp_lease(None) == 600
    assert settings.clamp_lease(1) == 60
    assert settings.clamp_lease(10**9) == 3600
    assert settings.clamp_lease(1000) == 1000


@pytest.mark.parametrize(
    "options",
    [
        {"lease_min": 0},
        {"lease_min": 100, "lease_default": 50},
        {"lease_max": 10, "lease_default": 20},
        {"max_secret_bytes": 200},
        {"max_attempts": 0},
        {"allow_networks": ("not a network",)},
    ],
)
def test_impossible_settings_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        WebSubSettings(**options)  # type: ignore[arg-type]


def test_backoff_doubles_up_to_the_maximum_with_jitter_down_to_half() -> None:
    settings = WebSubSettings(retry_base=1, retry_max=30)
    assert [settings.backoff(n, 0.999999) for n in (1, 2, 3)] == pytest.approx([1, 2, 4])
    assert settings.backoff(3, 0.0) == 2
    assert settings.backoff(50, 0.999999) == pytest.approx(30)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.5",
        "172.16.3.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.100.100.200",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fd00:ec2::254",
        "::ffff:10.0.0.1",
        "2002:7f00:1::",
        "::7f00:1",
        "::127.0.0.1",
        "::a00:5",
        "64:ff9b::7f00:1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::7f00:1",
        "64:ff9b:1:2::c0a8:101",
        "::ffff:0:7f00:1",
        "2002:a9fe:a9fe::1",
        "2001:0:4136:e378:8000:63bf:80ff:fffe",
    ],
)
def test_internal_addresses_are_not_allowed(address: str) -> None:
    assert not CallbackGuard(WebSubSettings()).allowed(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address",
    ["93.184.215.14", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "::808:808"],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert CallbackGuard(WebSubSettings()).allowed(ipaddress.ip_address(address))


def test_the_allow_list_admits_exactly_its_networks() -> None:
    guard = CallbackGuard(WebSubSettings(allow_networks=("127.0.0.1/32", "10.8.0.0/16")))
    assert guard.allowed(ipaddress.ip_address("127.0.0.1"))
    assert guard.allowed(ipaddress.ip_address("::ffff:127.0.0.1"))
    assert guard.allowed(ipaddress.ip_address("10.8.3.3"))
    assert not guard.allowed(ipaddress.ip_address("127.0.0.2"))
    assert not guard.allowed(ipaddress.ip_address("10.9.0.1"))


async def test_a_name_is_refused_if_any_of_its_addresses_is_internal() -> None:
    guard = CallbackGuard(WebSubSettings())
    with pytest.raises(CallbackRefused, match="loopback"):
        await guard.check("http://localhost:8000/cb")
    with pytest.raises(CallbackRefused, match="http:// or https://"):
        await guard.check("file:///etc/passwd")


@pytest.mark.parametrize(
    "callback",
    [
        "http://[::7f00:1]/",
        "http://[64:ff9b::7f00:1]/",
        "http://[64:ff9b:1::7f00:1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[2002:7f00:1::1]/",
    ],
)
async def test_ipv6_forms_of_loopback_are_refused_as_loopback(callback: str) -> None:
    with pytest.raises(CallbackRefused, match="loopback"):
        await CallbackGuard(WebSubSettings()).check(callback)


async def test_requests_are_pinned_to_the_checked_address() -> None:
    guard = CallbackGuard(WebSubSettings(allow_networks=("127.0.0.0/8", "::1/128")))
    pinned = await guard.pin(guard.parse("https://localhost:8443/cb?x=1"))
    assert pinned.url.host in ("127.0.0.1", "::1")
    assert pinned.url.path == "/cb" and pinned.url.query == b"x=1"
    assert pinned.headers == {"Host": "localhost:8443"}
    assert pinned.extensions == {"sni_hostname": "localhost"}


def test_percent_encoded_unreserved_characters_are_decoded() -> None:
    assert decode_unreserved("http://a.example/%7Euser/%41b%2Fc") == "http://a.example/~user/Ab%2Fc"


def test_verification_parameters_follow_the_callbacks_own_query() -> None:
    url = with_query("http://a.example/cb?hub.mode=mine&x=1", [("hub.mode", "subscribe")])
    assert url.query == b"hub.mode=mine&x=1&hub.mode=subscribe"
    assert with_query("http://a.example/cb", [("hub.topic", "/a b")]).query == b"hub.topic=%2Fa+b"


def test_the_signature_is_the_hmac_sha256_of_the_exact_body() -> None:
    body = b'{"text": "h\xc3\xa9"}'
    expected = hmac.new(b"key", body, hashlib.sha256).hexdigest()
    assert signature("key", body) == f"sha256={expected}"


def test_the_rate_limiter_refills_over_time() -> None:
    limiter = RateLimiter(2, 10.0)
    assert limiter.acquire("a", now=0) == 0
    assert limiter.acquire("a", now=0) == 0
    assert limiter.acquire("a", now=0) == pytest.approx(5.0)
    assert limiter.acquire("b", now=0) == 0, "clients are counted apart"
    assert limiter.acquire("a", now=5.0) == 0


def test_the_rate_limiter_forgets_the_oldest_clients_beyond_its_bound() -> None:
    limiter = RateLimiter(1, 60.0, max_keys=2)
    for key in ("a", "b", "c"):
        limiter.acquire(key, now=0)
    assert limiter.acquire("a", now=0) == 0, "a was forgotten"


def test_topic_urls_and_addresses_map_to_addresses() -> None:
    path = "/streams/websub"
    assert topic_address("https://api.example/streams/websub/stocks/AAPL", path) == "/stocks/AAPL"
    assert topic_address("/streams/websub/stocks/AAPL", path) == "/stocks/AAPL"
    assert topic_address("/stocks/AAPL", path) == "/stocks/AAPL"
    assert topic_address("http://x/streams/websub/a%20b", path) == "/a b"
    with pytest.raises(HubError) as refused:
        topic_address("https://api.example/other/stocks/AAPL", path)
    assert refused.value.status == 404


def test_requests_are_read_from_forms_only() -> None:
    assert parse_form(b"hub.mode=subscribe&hub.mode=x&a=", "application/x-www-form-urlencoded")
    with pytest.raises(HubError) as refused:
        parse_form(b"{}", "application/json")
    assert refused.value.status == 415
    with pytest.raises(HubError) as refused:
        parse_form(b"hub.mode=\xff", "application/x-www-form-urlencoded; charset=utf-8")
    assert refused.value.status == 400


def test_addresses_are_made_canonical_and_leases_ignored_on_unsubscribe() -> None:
    streaming = StreamingAPI()

    @streaming.subscribe("/rooms/{room:int}")
    async def rooms(event: dict[str, int], room: int) -> dict[str, int]:
        return event

    reader = IntentReader(WebSubSettings(), streaming.topics)
    form = {"hub.mode": "unsubscribe", "hub.topic": "/rooms/007", "hub.callback": "http://x/"}
    intent = reader.read({**form, "hub.lease_seconds": "junk"}, "/streams/websub")
    assert intent.address == "/rooms/7"
    assert intent.topic_url == "/rooms/007"
    assert intent.requested_lease is None


def test_unparsable_hub_requests_are_bad_requests_not_crashes() -> None:
    streaming = StreamingAPI()

    @streaming.subscribe("/rooms/{room:int}")
    async def rooms(event: dict[str, int], room: int) -> dict[str, int]:
        return event

    reader = IntentReader(WebSubSettings(), streaming.topics)
    form = {"hub.mode": "subscribe", "hub.topic": "/rooms/7", "hub.callback": "http://x/"}
    with pytest.raises(HubError) as refused:
        reader.read({**form, "hub.lease_seconds": "9" * 5000}, "/streams/websub")
    assert refused.value.status == 400
    with pytest.raises(HubError) as refused:
        reader.read({**form, "hub.topic": "/rooms/" + "1" * 5000}, "/streams/websub")
    assert refused.value.status == 404
    with pytest.raises(HubError) as refused:
        reader.read({**form, "hub.topic": "http://[::1/streams/websub/rooms/7"}, "/streams/websub")
    assert refused.value.status == 400


def test_the_migration_command_creates_the_tables(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'hub.sqlite3'}"
    command = [sys.executable, "-m", "fastapi_streaming.websub.migrate", url]
    first = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)
    assert first.stdout.split() == [
        "ready:",
        "websub_deliveries",
        "ready:",
        "websub_events",
        "ready:",
        "websub_subscriptions",
    ]
    again = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)
    assert again.stdout == first.stdout


def test_with_a_public_url_topic_urls_must_be_on_it() -> None:
    streaming = StreamingAPI()

    @streaming.subscribe("/news")
    async def news(event: dict[str, str]) -> dict[str, str]:
        return event

    reader = IntentReader(WebSubSettings(public_url="https://API.example/"), streaming.topics)
    form = {"hub.mode": "subscribe", "hub.callback": "https://x.example/"}
    path = "/streams/websub"
    good = reader.read({**form, "hub.topic": "https://api.example/streams/websub/news"}, path)
    assert good.address == "/news"
    with pytest.raises(HubError) as refused:
        reader.read({**form, "hub.topic": "https://evil.example/streams/websub/news"}, path)
    assert refused.value.status == 404
    assert reader.read({**form, "hub.topic": "/news"}, path).address == "/news"


def test_the_hub_uses_the_streaming_apis_public_url_unless_it_has_its_own() -> None:
    streaming = StreamingAPI(public_url="https://api.example", websub=WebSubSettings())
    assert streaming.websub is not None and streaming.websub.public_url == "https://api.example"
    own = WebSubSettings(public_url="https://hooks.example")
    streaming = StreamingAPI(public_url="https://api.example", websub=own)
    assert streaming.websub is not None and streaming.websub.public_url == "https://hooks.example"
