"""Deliveries over kept-alive connections: reuse, HTTPS, and connections the callback drops.

The receiver is a raw asyncio server on 127.0.0.1 (``tests.support.keepalive_receiver``) that
records which connection each request came on; the HTTPS one has a self-signed certificate
made for the test (``benchmarks.selfsigned``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ssl
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.selfsigned import SelfSigned
from fastapi_streaming.websub import WebSubSettings
from tests.e2e.test_websub import Hub, start_hub
from tests.support.keepalive_receiver import KeepAliveReceiver


@pytest.fixture
def settings(tmp_path: Path) -> WebSubSettings:
    return WebSubSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'hub.sqlite3'}",
        allow_networks=("127.0.0.1/32",),
        retry_base=0.1,
        retry_max=0.5,
        delivery_timeout=2.0,
        verify_timeout=2.0,
        poll_interval=0.1,
        sync_interval=0.2,
    )


@pytest.fixture
def certificate(tmp_path: Path) -> Iterator[SelfSigned]:
    yield SelfSigned.create(tmp_path)


def server_tls(certificate: SelfSigned) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate.cert, certificate.key)
    return context


async def subscribed(hub: Hub, receiver: KeepAliveReceiver, path: str, secret: str) -> str:
    callback = receiver.url(path)
    answer = await hub.subscribe("/notes/a", callback, secret=secret)
    assert answer.status_code == 202, answer.text
    await hub.wait_active("/notes/a", callback)
    return callback


def signed_by(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def test_deliveries_to_one_host_reuse_a_few_connections(settings: WebSubSettings) -> None:
    async with start_hub(settings) as hub, KeepAliveReceiver() as receiver:
        await subscribed(hub, receiver, "/a", "secret-a")
        await subscribed(hub, receiver, "/b", "secret-b")
        for seq in range(30):
            await hub.publish("/notes/a", {"text": "tick", "seq": seq})
        await receiver.wait_for_deliveries(60)
        deliveries = receiver.deliveries()
        used = {item.connection for item in deliveries}
        # At most per_subscriber_concurrency requests per subscription at once, each on a
        # connection of the host's pool: a handful of connections carried all 60 requests.
        assert len(used) <= 2 * settings.per_subscriber_concurrency
        assert max(Counter(item.connection for item in deliveries).values()) >= 5
        for item in deliveries:
            secret = "secret-a" if item.path == "/a" else "secret-b"
            assert item.headers["x-hub-signature"] == signed_by(secret, item.body)


async def test_https_callbacks_are_verified_and_reused(
    settings: WebSubSettings, certificate: SelfSigned
) -> None:
    trusting = {"tls_ca_file": str(certificate.cert)}
    async with (
        KeepAliveReceiver(tls=server_tls(certificate)) as receiver,
        start_hub(settings, **trusting) as hub,
    ):
        await subscribed(hub, receiver, "/tls", "secret-tls")
        for seq in range(20):
            await hub.publish("/notes/a", {"text": "tick", "seq": seq})
        await receiver.wait_for_deliveries(20)
        deliveries = receiver.deliveries()
        assert len({item.connection for item in deliveries}) <= settings.per_subscriber_concurrency
        assert all(
            item.headers["x-hub-signature"] == signed_by("secret-tls", item.body)
            for item in deliveries
        )


async def test_a_certificate_the_hub_does_not_trust_fails_the_delivery(
    settings: WebSubSettings, certificate: SelfSigned
) -> None:
    """TLS verification is on by default: a hub that does not trust the self-signed
    certificate (only the system's authorities) records the failure and sends nothing."""
    async with KeepAliveReceiver(tls=server_tls(certificate)) as receiver:
        async with start_hub(settings, tls_ca_file=str(certificate.cert)) as hub:
            await subscribed(hub, receiver, "/tls", "secret-tls")
        async with start_hub(settings) as hub:
            await hub.publish("/notes/a", {"text": "must not arrive"})
            assert hub.streaming.websub is not None
            repo = hub.streaming.websub.repo
            deadline = time.monotonic() + 10
            while True:
                async with repo.engine.connect() as conn:
                    rows = (await conn.execute(repo.tables.deliveries.select())).mappings().all()
                if rows and rows[0]["last_error"]:
                    break
                assert time.monotonic() < deadline, "the delivery was never attempted"
                await asyncio.sleep(0.05)
            assert "CERTIFICATE_VERIFY_FAILED" in rows[0]["last_error"]
            assert receiver.deliveries() == []


async def test_a_kept_alive_connection_the_callback_drops_is_retried_without_loss_or_duplicates(
    settings: WebSubSettings,
) -> None:
    """The callback closes each connection after three answers, on reading the fourth request
    (as a server whose keep-alive timer ran out does): that request goes out again on a new
    connection within the same attempt, so every event arrives once, as attempt 1."""
    async with (
        KeepAliveReceiver(answers_per_connection=3) as receiver,
        start_hub(settings) as hub,
    ):
        await subscribed(hub, receiver, "/a", "secret-a")
        await subscribed(hub, receiver, "/b", "secret-b")
        for seq in range(25):
            await hub.publish("/notes/a", {"text": "tick", "seq": seq})
        await receiver.wait_for_deliveries(50)
        await asyncio.sleep(0.5)  # room for a duplicate to show up
        deliveries = receiver.deliveries()
        assert receiver.dropped > 0, "the receiver never dropped a kept-alive connection"
        assert len(deliveries) == 50
        assert len({(item.path, item.headers["x-hub-event-id"]) for item in deliveries}) == 50
        assert {item.headers["x-hub-attempt"] for item in deliveries} == {"1"}
        assert hub.streaming.websub is not None
        counts = await hub.streaming.websub.repo.delivery_counts()
        assert counts == {"pending": 0, "done": 50, "failed": 0}


async def test_a_redirect_is_a_failed_attempt_and_is_not_followed(
    settings: WebSubSettings,
) -> None:
    async with KeepAliveReceiver() as receiver, start_hub(settings, max_attempts=1) as hub:
        receiver.redirect_to = receiver.url("/elsewhere")
        await subscribed(hub, receiver, "/moved", "secret")
        await hub.publish("/notes/a", {"text": "tick"})
        assert hub.streaming.websub is not None
        repo = hub.streaming.websub.repo
        deadline = time.monotonic() + 10
        while (await repo.delivery_counts())["failed"] == 0:
            assert time.monotonic() < deadline, "the delivery never failed"
            await asyncio.sleep(0.05)
        async with repo.engine.connect() as conn:
            rows = (await conn.execute(repo.tables.deliveries.select())).mappings().all()
        assert rows[0]["last_error"] == "answered HTTP 302"
        assert [item.path for item in receiver.deliveries()] == ["/moved"]
