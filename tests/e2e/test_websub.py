"""The WebSub hub against real subscriber servers on 127.0.0.1, over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from fastapi_streaming import StreamingAPI, summarize
from fastapi_streaming.websub import WebSubSettings
from tests.apps.websub_app import make_app
from tests.support.websub import Subscriber, publish, running_app, subscribe


@pytest.fixture
def settings(tmp_path: Path) -> WebSubSettings:
    return WebSubSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'hub.sqlite3'}",
        allow_networks=("127.0.0.1/32",),
        lease_min=1,
        retry_base=0.1,
        retry_max=0.5,
        delivery_timeout=1.0,
        verify_timeout=2.0,
        poll_interval=0.1,
        sync_interval=0.2,
        cleanup_interval=0.2,
    )


class Hub:
    """A running hub app and what the tests need of it."""

    def __init__(self, base: str, streaming: StreamingAPI) -> None:
        self.base = base
        self.streaming = streaming

    def topic_url(self, address: str) -> str:
        return f"{self.base}/streams/websub{address}"

    async def subscribe(self, address: str, callback: str, **extra: str) -> httpx.Response:
        return await subscribe(self.base, self.topic_url(address), callback, **extra)

    async def publish(self, address: str, data: Any) -> str:
        return await publish(self.base, address, data)

    async def active(self, address: str, callback: str) -> dict[str, Any] | None:
        assert self.streaming.websub is not None
        found = await self.streaming.websub.repo.subscription(address, callback)
        return None if found is None else dict(found)

    async def wait_active(self, address: str, callback: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while await self.active(address, callback) is None:
            assert time.monotonic() < deadline, f"{callback} never became active"
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def start_hub(settings: WebSubSettings, **overrides: Any) -> AsyncIterator[Hub]:
    app, streaming = make_app(replace(settings, **overrides))
    async with running_app(app) as base:
        yield Hub(base, streaming)


@pytest.fixture
async def hub(settings: WebSubSettings) -> AsyncIterator[Hub]:
    async with start_hub(settings) as running:
        yield running


@pytest.fixture
async def subscriber() -> AsyncIterator[Subscriber]:
    async with Subscriber() as running:
        yield running


async def active_subscription(
    hub: Hub, subscriber: Subscriber, path: str, address: str = "/notes/a", **behaviour: Any
) -> str:
    callback = subscriber.behave(path, **behaviour)
    answer = await hub.subscribe(address, callback)
    assert answer.status_code == 202, answer.text
    await hub.wait_active(address, callback)
    return callback


# -- subscribing ---------------------------------------------------------------------------


async def test_subscription_is_verified_then_receives_signed_events(
    hub: Hub, subscriber: Subscriber
) -> None:
    callback = subscriber.behave("/signed")
    answer = await hub.subscribe(
        "/notes/a", callback, secret="s3cret-of-the-subscriber", lease_seconds="600"
    )
    assert answer.status_code == 202
    assert answer.headers["content-type"].startswith("text/plain")

    await subscriber.wait_until(lambda: len(subscriber.verifications("/signed")) == 1)
    check = subscriber.verifications("/signed")[0].query
    assert check["hub.mode"] == "subscribe"
    assert check["hub.topic"] == hub.topic_url("/notes/a")
    assert check["hub.lease_seconds"] == "600"
    assert len(check["hub.challenge"]) >= 32
    await hub.wait_active("/notes/a", callback)

    event_id = await hub.publish("/notes/a", {"text": "hello"})
    await subscriber.wait_until(lambda: len(subscriber.deliveries("/signed")) == 1)
    delivery = subscriber.deliveries("/signed")[0]
    assert json.loads(delivery.body) == {"text": "hello", "seq": 0}
    assert delivery.headers["content-type"] == "application/json"
    assert delivery.headers["x-hub-event-id"] == event_id
    expected = hmac.new(b"s3cret-of-the-subscriber", delivery.body, hashlib.sha256).hexdigest()
    assert delivery.headers["x-hub-signature"] == f"sha256={expected}"
    link = delivery.headers["link"]
    assert f'<{hub.base}/streams/websub/hub>; rel="hub"' in link
    assert f'<{hub.topic_url("/notes/a")}>; rel="self"' in link


async def test_deliveries_count_under_the_subscriber_or_as_server_when_made_before(
    hub: Hub, subscriber: Subscriber
) -> None:
    # No plans, no token: the subscriber is its address, as an anonymous connection would be.
    mine = await active_subscription(hub, subscriber, "/mine")
    older = await active_subscription(hub, subscriber, "/older")
    assert hub.streaming.websub is not None
    repo = hub.streaming.websub.repo
    subs = repo.tables.subscriptions
    async with repo.engine.begin() as conn:  # as a subscription from before principals were kept
        await conn.execute(
            update(subs).where(subs.c.callback == older).values(principal=None, plan=None)
        )
    for n in range(3):
        await hub.publish("/notes/a", {"text": "hi", "seq": n})
    await subscriber.wait_until(lambda: len(subscriber.deliveries()) == 6, what="6 deliveries")
    deadline = time.monotonic() + 10
    while True:  # outcomes are counted as they are recorded, a batch at a time
        totals = {
            (t.group["principal"], t.group["plan"], t.group["topic"]): t.delivered
            for t in summarize(await hub.streaming.usage(), ("principal", "plan", "topic"))
        }
        if sum(totals.values()) >= 6 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert (await hub.active("/notes/a", mine) or {})["principal"] == "address:127.0.0.1"
    assert totals == {
        ("address:127.0.0.1", "none", "/notes/{room}"): 3,
        ("(server)", "none", "/notes/{room}"): 3,
    }


async def test_callback_query_is_kept_on_verification_and_delivery(
    hub: Hub, subscriber: Subscriber
) -> None:
    subscriber.behave("/q")
    callback = subscriber.url("/q") + "?client=7&hub.mode=kept"
    assert (await hub.subscribe("/notes/a", callback)).status_code == 202
    await hub.wait_active("/notes/a", callback)
    (check,) = subscriber.verifications("/q")
    assert check.query["client"] == "7"
    await hub.publish("/notes/a", {"text": "q"})
    await subscriber.wait_until(lambda: len(subscriber.deliveries("/q")) == 1)


@pytest.mark.parametrize("answer", ["wrong", "refuse"])
async def test_unconfirmed_subscription_never_becomes_active(
    hub: Hub, subscriber: Subscriber, answer: str
) -> None:
    callback = subscriber.behave("/unsure", verify=answer)
    assert (await hub.subscribe("/notes/a", callback)).status_code == 202
    await subscriber.wait_until(lambda: len(subscriber.verifications("/unsure")) == 1)
    await asyncio.sleep(0.3)
    assert await hub.active("/notes/a", callback) is None
    await hub.publish("/notes/a", {"text": "not for you"})
    await asyncio.sleep(0.5)
    assert subscriber.deliveries("/unsure") == []


async def test_failed_renewal_leaves_the_subscription_as_it_was(
    hub: Hub, subscriber: Subscriber
) -> None:
    callback = await active_subscription(hub, subscriber, "/renew")
    before = await hub.active("/notes/a", callback)
    subscriber.behave("/renew", verify="refuse")
    await hub.subscribe("/notes/a", callback, lease_seconds="5", secret="new")
    await subscriber.wait_until(lambda: len(subscriber.verifications("/renew")) == 2)
    await asyncio.sleep(0.3)
    assert await hub.active("/notes/a", callback) == before


async def test_resubscribing_renews_the_lease_and_replaces_the_secret(
    hub: Hub, subscriber: Subscriber
) -> None:
    callback = subscriber.behave("/again")
    await hub.subscribe("/notes/a", callback, lease_seconds="100", secret="first")
    await hub.wait_active("/notes/a", callback)
    first = await hub.active("/notes/a", callback)
    assert first is not None
    await hub.subscribe("/notes/a", callback, lease_seconds="200")
    await subscriber.wait_until(lambda: len(subscriber.verifications("/again")) == 2)
    deadline = time.monotonic() + 5
    while (renewed := await hub.active("/notes/a", callback)) == first:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert renewed is not None
    assert renewed["id"] == first["id"]
    assert renewed["lease_seconds"] == 200
    assert renewed["expires_at"] > first["expires_at"]
    assert renewed["secret"] is None
    await hub.publish("/notes/a", {"text": "unsigned now"})
    await subscriber.wait_until(lambda: len(subscriber.deliveries("/again")) == 1)
    assert "x-hub-signature" not in subscriber.deliveries("/again")[0].headers


async def test_unsubscribe_is_verified_and_stops_deliveries(
    hub: Hub, subscriber: Subscriber
) -> None:
    callback = await active_subscription(hub, subscriber, "/leaving")
    answer = await hub.subscribe("/notes/a", callback, mode="unsubscribe")
    assert answer.status_code == 202
    await subscriber.wait_until(lambda: len(subscriber.verifications("/leaving")) == 2)
    check = subscriber.verifications("/leaving")[1].query
    assert check["hub.mode"] == "unsubscribe"
    assert "hub.lease_seconds" not in check
    deadline = time.monotonic() + 5
    while await hub.active("/notes/a", callback) is not None:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await hub.publish("/notes/a", {"text": "gone"})
    await asyncio.sleep(0.5)
    assert subscriber.deliveries("/leaving") == []


async def test_unsubscribe_the_subscriber_did_not_ask_for_is_ignored(
    hub: Hub, subscriber: Subscriber
) -> None:
    callback = await active_subscription(hub, subscriber, "/staying")
    subscriber.behave("/staying", verify="refuse")
    await hub.subscribe("/notes/a", callback, mode="unsubscribe")
    await subscriber.wait_until(lambda: len(subscriber.verifications("/staying")) == 2)
    await asyncio.sleep(0.3)
    assert await hub.active("/notes/a", callback) is not None
    await hub.publish("/notes/a", {"text": "still here"})
    await subscriber.wait_until(lambda: len(subscriber.deliveries("/staying")) == 1)


# -- authorization -------------------------------------------------------------------------


async def test_refused_subscriber_gets_the_denial_notification(
    hub: Hub, subscriber: Subscriber
) -> None:
    callback = subscriber.behave("/denied")
    answer = await hub.subscribe("/private/x", callback)
    assert answer.status_code == 202, "the answer must not depend on validation (WebSub 5.1.2)"
    await subscriber.wait_until(lambda: len(subscriber.denials("/denied")) == 1)
    denial = subscriber.denials("/denied")[0].query
    assert denial["hub.topic"] == hub.topic_url("/private/x")
    assert "notes:private" in denial["hub.reason"]
    assert subscriber.verifications("/denied") == []
    assert await hub.active("/private/x", callback) is None


async def test_request_without_credentials_is_answered_401_and_calls_nobody(
    hub: Hub, subscriber: Subscriber
) -> None:
    callback = subscriber.behave("/anonymous")
    answer = await hub.subscribe("/members/x", callback)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    await asyncio.sleep(0.3)
    assert subscriber.requests == []


# -- leases --------------------------------------------------------------------------------


async def test_leases_are_clamped_and_the_granted_value_is_reported(
    settings: WebSubSettings, subscriber: Subscriber
) -> None:
    async with start_hub(settings, lease_min=50, lease_default=100, lease_max=200) as hub:
        cases = {"/short": "3", "/long": "100000", "/none": None}
        for path, lease in cases.items():
            extra = {"lease_seconds": lease} if lease else {}
            await hub.subscribe("/notes/a", subscriber.behave(path), **extra)
        await subscriber.wait_until(lambda: len(subscriber.verifications()) == 3)
        granted = {
            path: subscriber.verifications(path)[0].query["hub.lease_seconds"] for path in cases
        }
        assert granted == {"/short": "50", "/long": "200", "/none": "100"}
        await hub.wait_active("/notes/a", subscriber.url("/long"))
        row = await hub.active("/notes/a", subscriber.url("/long"))
        assert row is not None and row["lease_seconds"] == 200


async def test_expired_subscription_stops_receiving_and_is_removed(
    hub: Hub, subscriber: Subscriber
) -> None:
    callback = subscriber.behave("/brief")
    await hub.subscribe("/notes/a", callback, lease_seconds="1")
    await hub.wait_active("/notes/a", callback)
    await hub.publish("/notes/a", {"text": "while alive"})
    await subscriber.wait_until(lambda: len(subscriber.deliveries("/brief")) == 1)
    await asyncio.sleep(1.2)
    await hub.publish("/notes/a", {"text": "after expiry"})
    deadline = time.monotonic() + 5
    while await hub.active("/notes/a", callback) is not None:
        assert time.monotonic() < deadline, "the expired subscription was not removed"
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.3)
    assert len(subscriber.deliveries("/brief")) == 1


# -- discovery -----------------------------------------------------------------------------


async def test_discovery_gives_hub_and_self_links_and_the_latest_event(
    hub: Hub, subscriber: Subscriber
) -> None:
    async with httpx.AsyncClient(base_url=hub.base) as http:
        empty = await http.get("/streams/websub/notes/d")
        assert empty.status_code == 204
        links = empty.headers["link"]
        assert f'<{hub.base}/streams/websub/hub>; rel="hub"' in links
        assert f'<{hub.topic_url("/notes/d")}>; rel="self"' in links
        assert (await http.head("/streams/websub/notes/d")).headers["link"] == links

        await active_subscription(hub, subscriber, "/discover", address="/notes/d")
        await hub.publish("/notes/d", {"text": "first"})
        await hub.publish("/notes/d", {"text": "latest"})
        await subscriber.wait_until(lambda: len(subscriber.deliveries("/discover")) == 2)
        latest = await http.get("/streams/websub/notes/d")
        assert latest.status_code == 200
        assert latest.headers["content-type"] == "application/json"
        assert latest.json() == {"text": "latest", "seq": 0}

        assert (await http.get("/streams/websub/nowhere")).status_code == 404


async def test_plain_address_is_accepted_as_topic(hub: Hub, subscriber: Subscriber) -> None:
    callback = subscriber.behave("/plain")
    answer = await subscribe(hub.base, "/notes/a", callback)
    assert answer.status_code == 202
    await hub.wait_active("/notes/a", callback)
    assert subscriber.verifications("/plain")[0].query["hub.topic"] == "/notes/a"
    await hub.publish("/notes/a", {"text": "plain"})
    await subscriber.wait_until(lambda: len(subscriber.deliveries("/plain")) == 1)
    link = subscriber.deliveries("/plain")[0].headers["link"]
    assert f'<{hub.topic_url("/notes/a")}>; rel="self"' in link


# -- delivery ------------------------------------------------------------------------------


async def test_failed_deliveries_are_retried_with_growing_backoff(
    hub: Hub, subscriber: Subscriber
) -> None:
    await active_subscription(hub, subscriber, "/flaky", statuses=[500, 503, 429, 200])
    event_id = await hub.publish("/notes/a", {"text": "eventually"})
    await subscriber.wait_until(lambda: len(subscriber.deliveries("/flaky")) == 4)
    attempts = subscriber.deliveries("/flaky")
    assert {a.headers["x-hub-event-id"] for a in attempts} == {event_id}
    assert [a.headers["x-hub-attempt"] for a in attempts] == ["1", "2", "3", "4"]
    assert len({a.body for a in attempts}) == 1
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(attempts)]
    # retry_base 0.1, doubling, jittered down to half: at least 0.05, 0.1, 0.2 s.
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1 and gaps[2] >= 0.2, gaps
    await asyncio.sleep(0.5)
    assert len(subscriber.deliveries("/flaky")) == 4, "a success is not delivered again"


async def test_a_timeout_counts_as_a_failure_and_is_retried(
    hub: Hub, subscriber: Subscriber
) -> None:
    await active_subscription(hub, subscriber, "/sleepy", delay=1.5)
    await hub.publish("/notes/a", {"text": "slowly"})
    await subscriber.wait_until(lambda: len(subscriber.deliveries("/sleepy")) >= 2, timeout=10)
    first, second = subscriber.deliveries("/sleepy")[:2]
    assert second.headers["x-hub-attempt"] == "2"
    assert first.headers["x-hub-event-id"] == second.headers["x-hub-event-id"]


async def test_gone_removes_the_subscription(hub: Hub, subscriber: Subscriber) -> None:
    callback = await active_subscription(hub, subscriber, "/gone", statuses=[410])
    await hub.publish("/notes/a", {"text": "anyone?"})
    await subscriber.wait_until(lambda: len(subscriber.deliveries("/gone")) == 1)
    deadline = time.monotonic() + 5
    while await hub.active("/notes/a", callback) is not None:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await hub.publish("/notes/a", {"text": "nobody"})
    await asyncio.sleep(0.5)
    assert len(subscriber.deliveries("/gone")) == 1


async def test_giving_up_on_one_event_keeps_the_subscription(
    settings: WebSubSettings, subscriber: Subscriber
) -> None:
    async with start_hub(settings, max_attempts=2) as hub:
        callback = await active_subscription(hub, subscriber, "/down", statuses=[500, 500, 200])
        await hub.publish("/notes/a", {"text": "lost cause"})
        await subscriber.wait_until(lambda: len(subscriber.deliveries("/down")) == 2)
        assert hub.streaming.websub is not None
        repo = hub.streaming.websub.repo
        deadline = time.monotonic() + 5
        while (await repo.delivery_counts())["failed"] != 1:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        assert len(subscriber.deliveries("/down")) == 2, "no attempt beyond max_attempts"
        assert await hub.active("/notes/a", callback) is not None
        await hub.publish("/notes/a", {"text": "next one"})
        await subscriber.wait_until(lambda: len(subscriber.deliveries("/down")) == 3)


async def test_a_slow_callback_does_not_delay_the_others(settings: WebSubSettings) -> None:
    async with (
        start_hub(settings, delivery_timeout=5.0, per_subscriber_concurrency=2) as hub,
        Subscriber() as slow,
        Subscriber() as fast,
    ):
        await active_subscription(hub, slow, "/slow", delay=4.0)
        await active_subscription(hub, fast, "/fast")
        started = time.monotonic()
        for seq in range(20):
            await hub.publish("/notes/a", {"text": "tick", "seq": seq})
        await fast.wait_until(lambda: len(fast.deliveries("/fast")) == 20, timeout=3)
        assert time.monotonic() - started < 3
        # The slow one is held to its own share: two requests in flight at most.
        await asyncio.sleep(0.5)
        assert len(slow.deliveries("/slow")) == 2


async def test_callbacks_are_checked_again_at_delivery_time(
    settings: WebSubSettings, subscriber: Subscriber
) -> None:
    """A subscription made while 127.0.0.1 was allowed is not called once it no longer is."""
    async with start_hub(settings) as hub:
        callback = await active_subscription(hub, subscriber, "/rebound")
    async with start_hub(settings, allow_networks=()) as hub:
        await hub.publish("/notes/a", {"text": "must not arrive"})
        assert hub.streaming.websub is not None
        repo = hub.streaming.websub.repo
        deadline = time.monotonic() + 5
        while True:
            async with repo.engine.connect() as conn:
                table = repo.tables.deliveries
                errors = (await conn.execute(table.select())).mappings().all()
            if errors and errors[0]["last_error"]:
                break
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert "loopback" in errors[0]["last_error"]
        assert subscriber.deliveries() == []
        assert await hub.active("/notes/a", callback) is not None


# -- bad requests --------------------------------------------------------------------------

GOOD = {"hub.mode": "subscribe", "hub.callback": "http://127.0.0.1:9/cb"}


@pytest.mark.parametrize(
    ("form", "status", "reason"),
    [
        ({"hub.mode": "subscribe", "hub.callback": "http://127.0.0.1:9/cb"}, 400, "hub.topic"),
        ({"hub.mode": "subscribe", "hub.topic": "/notes/a"}, 400, "hub.callback is required"),
        ({"hub.topic": "/notes/a", "hub.callback": "http://127.0.0.1:9/cb"}, 400, "hub.mode"),
        ({**GOOD, "hub.topic": "/notes/a", "hub.mode": "publish"}, 400, "'publish'"),
        ({**GOOD, "hub.topic": "/nowhere"}, 404, "names no topic"),
        ({**GOOD, "hub.topic": "http://elsewhere.example/feed"}, 404, "not a topic"),
        ({**GOOD, "hub.topic": "/audit"}, 400, "cannot be subscribed"),
        ({**GOOD, "hub.topic": "ftp://x/streams/websub/notes/a"}, 400, "hub.topic must be"),
        ({**GOOD, "hub.topic": "/notes/a", "hub.callback": "ftp://127.0.0.1/cb"}, 400, "http"),
        ({**GOOD, "hub.topic": "/notes/a", "hub.callback": "not a url"}, 400, "hub.callback"),
        ({**GOOD, "hub.topic": "/notes/a", "hub.secret": "x" * 200}, 400, "200 bytes"),
        ({**GOOD, "hub.topic": "/notes/a", "hub.lease_seconds": "-5"}, 400, "positive"),
        ({**GOOD, "hub.topic": "/notes/a", "hub.lease_seconds": "soon"}, 400, "positive"),
        (
            {**GOOD, "hub.topic": "/notes/a", "hub.callback": "http://no-such-host.invalid/"},
            400,
            "does not resolve",
        ),
    ],
)
async def test_malformed_requests_get_a_readable_4xx(
    hub: Hub, form: dict[str, str], status: int, reason: str
) -> None:
    async with httpx.AsyncClient(base_url=hub.base) as http:
        answer = await http.post("/streams/websub/hub", data=form)
    assert answer.status_code == status, answer.text
    assert reason in answer.text
    assert answer.headers["content-type"].startswith("text/plain")


async def test_unknown_fields_are_ignored(hub: Hub, subscriber: Subscriber) -> None:
    callback = subscriber.behave("/extra")
    async with httpx.AsyncClient(base_url=hub.base) as http:
        form = {"hub.mode": "subscribe", "hub.topic": "/notes/a", "hub.callback": callback}
        answer = await http.post("/streams/websub/hub", data={**form, "hub.future": "x"})
    assert answer.status_code == 202
    await hub.wait_active("/notes/a", callback)


async def test_a_secret_of_199_bytes_is_accepted(hub: Hub, subscriber: Subscriber) -> None:
    callback = subscriber.behave("/longsecret")
    answer = await hub.subscribe("/notes/a", callback, secret="é" * 99 + "x")
    assert answer.status_code == 202


async def test_body_must_be_a_form_of_bounded_size(hub: Hub) -> None:
    async with httpx.AsyncClient(base_url=hub.base) as http:
        as_json = await http.post("/streams/websub/hub", json={"hub.mode": "subscribe"})
        assert as_json.status_code == 415
        assert "application/x-www-form-urlencoded" in as_json.text
        huge = await http.post(
            "/streams/websub/hub", data={**GOOD, "hub.topic": "/notes/a", "pad": "x" * 9000}
        )
        assert huge.status_code == 413
        assert "8192 bytes" in huge.text


@pytest.mark.parametrize(
    "callback",
    [
        "http://127.0.0.1:9/cb",
        "http://localhost:9/cb",
        "http://[::1]:9/cb",
        "http://10.1.2.3/cb",
        "http://192.168.0.10/cb",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/cb",
        "http://[fd00:ec2::254]/cb",
        "http://0.0.0.0:9/cb",
    ],
)
async def test_callbacks_to_internal_addresses_are_refused(
    settings: WebSubSettings, callback: str
) -> None:
    async with start_hub(settings, allow_networks=()) as hub:
        answer = await hub.subscribe("/notes/a", callback)
    assert answer.status_code == 400, answer.text
    assert "this hub does not call such addresses" in answer.text


async def test_requests_beyond_the_rate_limit_get_429(settings: WebSubSettings) -> None:
    async with start_hub(settings, rate_limit=3, rate_period=60) as hub:
        answers = [await hub.subscribe("/nowhere", "http://127.0.0.1:9/") for _ in range(4)]
    assert [a.status_code for a in answers] == [404, 404, 404, 429]
    assert "at most 3 per 60 s" in answers[3].text
    assert int(answers[3].headers["retry-after"]) >= 1


async def test_subscriptions_per_topic_are_limited(
    settings: WebSubSettings, subscriber: Subscriber
) -> None:
    async with start_hub(settings, max_subscriptions_per_topic=1) as hub:
        callback = await active_subscription(hub, subscriber, "/first")
        refused = await hub.subscribe("/notes/a", subscriber.behave("/second"))
        assert refused.status_code == 409
        assert "maximum of 1 subscriptions" in refused.text
        assert (await hub.subscribe("/notes/a", callback)).status_code == 202, "renewal is fine"
        assert (await hub.subscribe("/notes/b", subscriber.behave("/other"))).status_code == 202


async def test_subscriptions_per_callback_host_are_limited(
    settings: WebSubSettings, subscriber: Subscriber
) -> None:
    async with start_hub(settings, max_subscriptions_per_host=1) as hub:
        await active_subscription(hub, subscriber, "/one")
        refused = await hub.subscribe("/notes/b", subscriber.behave("/two"))
    assert refused.status_code == 409
    assert "host '127.0.0.1'" in refused.text


async def test_a_sync_that_read_the_database_before_an_activation_keeps_the_topic(
    hub: Hub,
) -> None:
    """The verifying process joins a topic before it saves the subscription; a housekeeping
    sync that looked at the database just before the save must not leave the topic again."""
    assert hub.streaming.websub is not None
    intake = hub.streaming.websub.running.intake
    repo = intake.repo
    read_done, may_continue = asyncio.Event(), asyncio.Event()
    real_live_topics = repo.live_topics

    async def slow_live_topics() -> set[str]:
        found = await real_live_topics()
        read_done.set()
        await may_continue.wait()
        return found

    repo.live_topics = slow_live_topics  # type: ignore[method-assign]
    try:
        sync = asyncio.create_task(intake.sync())
        await read_done.wait()
        await intake.join("/notes/race")
        may_continue.set()
        await sync
    finally:
        repo.live_topics = real_live_topics  # type: ignore[method-assign]
    assert "/notes/race" in intake.joined


async def test_a_sync_while_a_subscription_is_being_saved_keeps_the_topic(hub: Hub) -> None:
    """The topic is joined before the subscription is saved: a sync that starts after the join
    and reads the database before the save (which it then does not see) must not leave the
    topic, whether it ends before the save or after it. Leaving it lost the events published
    right after the subscription became active, until the next sync joined the topic again."""
    assert hub.streaming.websub is not None
    intake = hub.streaming.websub.running.intake
    repo = intake.repo
    async with intake.activating("/notes/saving"):
        await intake.sync()  # read and done while the subscription is not saved
        assert "/notes/saving" in intake.joined
    read_done, may_continue = asyncio.Event(), asyncio.Event()
    real_live_topics = repo.live_topics

    async def slow_live_topics() -> set[str]:
        found = await real_live_topics()
        read_done.set()
        await may_continue.wait()
        return found

    repo.live_topics = slow_live_topics  # type: ignore[method-assign]
    try:
        async with intake.activating("/notes/saved"):
            sync = asyncio.create_task(intake.sync())
            await read_done.wait()  # the read, before the save
        may_continue.set()  # the activation is over when the sync goes on
        await sync
    finally:
        repo.live_topics = real_live_topics  # type: ignore[method-assign]
    assert "/notes/saved" in intake.joined


async def test_once_closed_for_shutdown_the_intake_joins_no_topic_again(
    hub: Hub, subscriber: Subscriber
) -> None:
    """A housekeeping sync during shutdown must not put the hub's queue back into the
    fan-out, or the server would wait for it until its grace period ends."""
    await active_subscription(hub, subscriber, "/closing")
    assert hub.streaming.websub is not None
    intake = hub.streaming.websub.running.intake
    fanout = hub.streaming.runtime.fanout
    assert intake.queue in fanout.queues
    await intake.close()
    await intake.sync()
    assert intake.queue not in fanout.queues
    assert intake.joined == set()
