"""Plans, plan choice, refusals and the limiter's batched charging, in one process."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from limits import parse
from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter
from redis.asyncio.client import Pipeline as RedisPipeline
from redis.asyncio.client import Redis
from starlette.requests import HTTPConnection

from fastapi_streaming import StreamingAPI, StreamingRouter
from fastapi_streaming.limits import Limiter, Limits, Plan, PlanByClaim, QuotaExceeded, Refusal
from fastapi_streaming.limits.batch import pipelined_counters
from fastapi_streaming.limits.memory import LocalStorage
from fastapi_streaming.security import Principal
from fastapi_streaming.security.access import Access, fill_scope, required_scopes
from fastapi_streaming.topics import Mode, Topic
from tests.support.turns import counting_turns


def connection(host: str = "10.0.0.1") -> HTTPConnection:
    return HTTPConnection({"type": "http", "headers": [], "client": (host, 1234)})


def principal(subject: str = "ann", **claims: Any) -> Principal:
    return Principal(subject=subject, claims=claims)


def publish_topic() -> Topic:
    """A topic ``/in`` that clients publish to, declared on an API of its own."""
    streaming = StreamingAPI()

    @streaming.publish("/in")
    async def take(event: dict[str, Any]) -> dict[str, Any]:
        return event

    topic = streaming.topics.get("/in")
    assert topic is not None
    return topic


def test_a_plan_checks_its_limits_when_declared() -> None:
    plan = Plan(name="gold", quota="1000/day", publish_rate=10, burst=50, max_connections=3)
    assert plan.quota_item is not None and plan.quota_item.amount == 1000
    assert plan.publish_item is not None
    assert (plan.publish_item.amount, plan.publish_item.get_expiry()) == (50, 5)
    assert Plan(name="x", publish_rate=2).publish_item.amount == 2  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="'<count>/<period>'"):
        Plan(name="bad", quota="lots")
    with pytest.raises(ValueError, match="burst needs a numeric publish_rate"):
        Plan(name="bad", burst=3)
    with pytest.raises(ValueError, match="must be a word"):
        Plan(name="two words")
    with pytest.raises(ValueError, match="max_connections must be positive"):
        Plan(name="bad", max_connections=0)


def test_plan_by_claim() -> None:
    free, gold = Plan(name="free", quota="10/day"), Plan(name="gold")
    choose = PlanByClaim([free, gold], default="free", by_value={"client-7": "gold"})
    assert choose(principal(plan="gold"), connection()) is gold
    assert choose(principal(plan="unknown"), connection()) is free
    assert choose(principal(), connection()) is free
    assert choose(None, connection()) is free
    by_client = PlanByClaim([free, gold], claim="client_id", by_value={"client-7": "gold"})
    assert by_client(principal(client_id="client-7"), connection()) is gold
    assert by_client(principal(client_id="client-8"), connection()) is None
    with pytest.raises(ValueError, match="No plan named 'platinum'"):
        PlanByClaim([free], default="platinum")


def test_refusal_headers_follow_the_ietf_draft() -> None:
    refusal = Refusal("gold", "quota", 1000, 86400, 42)
    assert refusal.headers() == {
        "Retry-After": "42",
        "RateLimit-Policy": '"gold-quota";q=1000;w=86400',
        "RateLimit": '"gold-quota";r=0;t=42',
    }
    error = QuotaExceeded(refusal)
    assert error.status_code == 429
    assert error.to_message(7) == {
        "type": "error",
        "id": 7,
        "code": 429,
        "error": "quota_exceeded",
        "detail": "Plan 'gold' allows a quota of 1000 events per 86400 s; that limit is reached. "
        "Come back in 42 s.",
        "limit": "quota",
        "plan": "gold",
        "retry_after": 42,
    }


def test_scopes_name_address_parameters() -> None:
    streaming = StreamingAPI()

    @streaming.subscribe(
        "/rooms/{room:int}/{thread}", scopes=["rooms:{room}:{thread}:read", "chat"]
    )
    async def room(event: dict[str, Any], room: int, thread: str) -> dict[str, Any]:
        return event

    topic = streaming.topics.get("/rooms/{room:int}/{thread}")
    assert topic is not None
    params = topic.match("/rooms/42/general")
    assert fill_scope("rooms:{room}:{thread}:read", topic, params) == "rooms:42:general:read"
    assert fill_scope("rooms:{room}:read", topic, None) == "rooms:{room}:read"
    access = Access(topic, Mode.SUBSCRIBE, params)
    assert access == (topic, Mode.SUBSCRIBE)  # still a pair for access controls of pairs
    assert required_scopes([access]) == ["rooms:42:general:read", "chat"]
    assert required_scopes([(topic, Mode.SUBSCRIBE)]) == ["rooms:{room}:{thread}:read", "chat"]
    with pytest.raises(ValueError, match=r"names \['user'\], which are not parameters"):
        streaming.subscribe("/rooms/{room}", scopes=["rooms:{user}:read"])(room)


def test_the_innermost_plan_wins() -> None:
    outer, inner, own = Plan(name="outer"), Plan(name="inner"), Plan(name="own")
    router = StreamingRouter(prefix="/r", plan=inner)

    @router.publish("/a")
    async def a(event: dict[str, Any]) -> None: ...

    @router.publish("/b", plan=own)
    async def b(event: dict[str, Any]) -> None: ...

    streaming = StreamingAPI()
    streaming.include_router(router, plan=outer)
    plain = StreamingRouter()

    @plain.publish("/c")
    async def c(event: dict[str, Any]) -> None: ...

    streaming.include_router(plain, plan=outer)
    limits = {topic.address: topic.publish.limit for topic in streaming.topics if topic.publish}
    assert limits == {"/r/a": inner, "/r/b": own, "/c": outer}


async def test_delivered_events_are_charged_in_batches() -> None:
    sent = {"/feed/a": 0}
    limiter = Limiter(Limits(plan=Plan(name="tiny", quota="10/minute"), flush_interval=3600))
    await limiter.start(lambda address: sent.get(address))
    streaming = StreamingAPI()

    @streaming.subscribe("/feed/{name}")
    async def feed(event: dict[str, Any], name: str) -> dict[str, Any]:
        return event

    topic = streaming.topics.get("/feed/{name}")
    assert topic is not None
    ended: list[Refusal] = []
    try:
        lease = await limiter.open(connection(), [principal()], ended.append)
        await lease.add([(topic, Mode.SUBSCRIBE)])  # the request: 1
        await lease.track(topic, "/feed/a")
        sent["/feed/a"] += 8  # the fan-out sent 8 events: nothing is charged yet
        assert limiter.counted["tiny"] == 1
        await limiter.flush()
        assert limiter.counted["tiny"] == 9 and ended == []
        sent["/feed/a"] += 2
        await limiter.flush()  # 11 > 10: the stream ends, saying when to come back
        assert [refusal.limit for refusal in ended] == ["quota"]
        assert 1 <= ended[0].retry_after <= 60
        assert limiter.throttles[("tiny", "quota")] == 1
        with pytest.raises(QuotaExceeded):
            await lease.add([(topic, Mode.SUBSCRIBE)])
        await lease.release()
        assert lease not in limiter.leases
    finally:
        await limiter.stop()


async def test_anonymous_clients_are_counted_by_address() -> None:
    limiter = Limiter(Limits(plan=Plan(name="anon", publish_rate="1/minute")))
    await limiter.start(lambda address: None)
    topic = publish_topic()
    try:
        first = await limiter.meter(connection("10.0.0.1"), None, topic, Mode.PUBLISH)
        second = await limiter.meter(connection("10.0.0.2"), None, topic, Mode.PUBLISH)
        assert first is not None and second is not None
        assert first.key == "address:10.0.0.1"
        await limiter.charge(first, publish=True)
        await limiter.charge(second, publish=True)
        with pytest.raises(QuotaExceeded):
            await limiter.charge(first, publish=True)
    finally:
        await limiter.stop()


def test_a_bad_storage_url_says_what_to_use() -> None:
    with pytest.raises(ValueError, match="use 'memory://'"):
        _ = Limiter(Limits(storage="mongodb://x")).storage


@pytest.mark.redis
async def test_a_flush_charges_every_principal_in_one_redis_round_trip() -> None:
    """Three principals' deliveries go to Redis in one pipeline; the counters are the ``limits``
    library's own (it reads them back), and only the principal over its quota is ended."""
    sent = {"/feed/a": 0}
    namespace = f"flush-{uuid.uuid4().hex[:10]}"
    settings = Limits(
        plan=Plan(name="tiny", quota="10/minute"),
        storage="redis://127.0.0.1:6379/0",
        namespace=namespace,
        flush_interval=3600,
    )
    limiter = Limiter(settings)
    await limiter.start(lambda address: sent.get(address))
    streaming = StreamingAPI()

    @streaming.subscribe("/feed/{name}")
    async def feed(event: dict[str, Any], name: str) -> dict[str, Any]:
        return event

    topic = streaming.topics.get("/feed/{name}")
    assert topic is not None
    ended: dict[str, list[Refusal]] = {name: [] for name in ("ann", "bob", "cy")}
    bridge = pipelined_counters(limiter.storage)
    assert bridge is not None
    one_by_one: list[str] = []
    storage: Any = limiter.storage
    incr = storage.incr

    async def counted_incr(key: str, expiry: int, amount: int = 1) -> int:
        one_by_one.append(key)
        return int(await incr(key, expiry, amount))

    try:
        leases = {}
        for name in ended:
            leases[name] = await limiter.open(connection(), [principal(name)], ended[name].append)
            await leases[name].track(topic, "/feed/a")
        await leases["cy"].add([(topic, Mode.SUBSCRIBE)])  # cy's request: 1 more for cy
        sent["/feed/a"] += 10  # each connection was sent 10 events
        storage.incr = counted_incr
        await limiter.flush()
        assert one_by_one == []  # all three went in one pipeline
        assert limiter.counted["tiny"] == 31
        assert ended["ann"] == ended["bob"] == [] and [r.limit for r in ended["cy"]] == ["quota"]
        quota = Plan(name="tiny", quota="10/minute").quota_item
        assert quota is not None
        checker = FixedWindowRateLimiter(limiter.storage)
        remaining = {
            name: (await checker.get_window_stats(quota, namespace, "tiny", name)).remaining
            for name in ended
        }
        assert remaining == {"ann": 0, "bob": 0, "cy": 0}
        for lease in leases.values():
            await lease.release()
    finally:
        await limiter.stop()
        await bridge.get_connection().aclose()


@pytest.mark.redis
async def test_a_publish_asks_rate_and_quota_in_one_round_trip_and_a_refusal_costs_no_quota() -> (
    None
):
    namespace = f"publish-{uuid.uuid4().hex[:10]}"
    plan = Plan(name="pub", quota="10/minute", publish_rate="2/minute")
    limiter = Limiter(Limits(plan=plan, storage="redis://127.0.0.1:6379/0", namespace=namespace))
    await limiter.start(lambda address: None)
    topic = publish_topic()
    storage: Any = limiter.storage
    one_by_one: list[str] = []
    incr, acquire = storage.incr, storage.acquire_entry

    async def counted_incr(key: str, expiry: int, amount: int = 1) -> int:
        one_by_one.append(key)
        return int(await incr(key, expiry, amount))

    async def counted_acquire(key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        one_by_one.append(key)
        return bool(await acquire(key, limit, expiry, amount))

    storage.incr, storage.acquire_entry = counted_incr, counted_acquire
    try:
        meter = await limiter.meter(connection(), principal("pat"), topic, Mode.PUBLISH)
        assert meter is not None
        await limiter.charge(meter, 1, publish=True)
        await limiter.charge(meter, 1, publish=True)
        assert one_by_one == []  # rate and quota went together, in one pipeline each time
        with pytest.raises(QuotaExceeded) as refused:
            await limiter.charge(meter, 1, publish=True)
        assert refused.value.refusal.limit == "publish_rate"
        assert plan.quota_item is not None
        checker = FixedWindowRateLimiter(storage)
        stats = await checker.get_window_stats(plan.quota_item, *meter.ids)
        assert stats.remaining == 8  # the refused publish was taken off the quota again
        assert limiter.counted["pub"] == 2
    finally:
        await limiter.stop()
        await storage.bridge.get_connection().aclose()


@pytest.mark.redis
async def test_publishes_of_the_same_moment_are_charged_in_one_round_trip(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plan = Plan(name="burst", quota="1000/minute", publish_rate="100/minute")
    settings = Limits(
        plan=plan,
        storage="redis://127.0.0.1:6379/0",
        namespace=f"burst-{uuid.uuid4().hex[:10]}",
        reserve=False,  # every publish charged exactly (a budget would reserve besides)
    )
    limiter = Limiter(settings)
    await limiter.start(lambda address: None)
    topic = publish_topic()
    storage: Any = limiter.storage
    pipelines: list[int] = []
    commands: list[tuple[str, int]] = []
    execute, execute_command = RedisPipeline.execute, Redis.execute_command

    async def counted_execute(self: RedisPipeline, raise_on_error: bool = True) -> Any:
        pipelines.append(len(self.command_stack))
        return await execute(self, raise_on_error)

    async def counted_command(self: Redis, *args: Any, **options: Any) -> Any:
        commands.append((str(args[0]).upper(), int(args[2]) if len(args) > 2 else 0))
        return await execute_command(self, *args, **options)

    try:
        meters = [
            await limiter.meter(connection(), principal(name), topic, Mode.PUBLISH)
            for name in ("a", "b", "c", "d")
        ]
        monkeypatch.setattr(RedisPipeline, "execute", counted_execute)
        monkeypatch.setattr(Redis, "execute_command", counted_command)
        await asyncio.gather(*(limiter.charge(m, 1, publish=True) for m in meters if m))
        # Four publishes, a rate and a quota counter each, in one script call: one command
        # (each command is turns of the event loop the publishes wait), no pipeline.
        assert commands == [("EVALSHA", 8)] and pipelines == []
        assert limiter.counted["burst"] == 4
    finally:
        monkeypatch.undo()
        await limiter.stop()
        await storage.bridge.get_connection().aclose()


@pytest.mark.redis
async def test_publishes_of_one_batch_over_the_rate_are_refused_and_cost_no_quota() -> None:
    """One script call answers each publish of the batch in turn: the rate lets the first two
    through, refuses the third, and only the two are charged to the quota."""
    plan = Plan(name="batch", quota="10/minute", publish_rate="2/minute")
    namespace = f"batch-{uuid.uuid4().hex[:10]}"
    limiter = Limiter(Limits(plan=plan, storage="redis://127.0.0.1:6379/0", namespace=namespace))
    await limiter.start(lambda address: None)
    topic = publish_topic()
    storage: Any = limiter.storage
    try:
        meter = await limiter.meter(connection(), principal("pat"), topic, Mode.PUBLISH)
        assert meter is not None
        outcomes = await asyncio.gather(
            *(limiter.charge(meter, 1, publish=True) for _ in range(3)), return_exceptions=True
        )
        assert outcomes[:2] == [None, None]
        assert isinstance(outcomes[2], QuotaExceeded)
        assert outcomes[2].refusal.limit == "publish_rate"
        assert plan.quota_item is not None
        stats = await FixedWindowRateLimiter(storage).get_window_stats(plan.quota_item, *meter.ids)
        assert stats.remaining == 8
        assert limiter.counted["batch"] == 2
    finally:
        await limiter.stop()
        await storage.bridge.get_connection().aclose()


async def test_counters_that_never_answer_let_publishes_through_after_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The limiter's Redis client has no socket timeout of its own (it would cost every
    command two turns of the event loop): the limiter bounds its calls itself."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # reads nothing, answers nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setattr("fastapi_streaming.limits.timeouts.STORAGE_TIMEOUT", 0.3)
    plan = Plan(name="mute", quota="10/minute", publish_rate="5/minute")
    limiter = Limiter(Limits(plan=plan, storage=f"redis://127.0.0.1:{port}/0"))
    topic = publish_topic()
    try:
        meter = await limiter.meter(connection(), principal("pat"), topic, Mode.PUBLISH)
        assert meter is not None
        # Let through (uncounted) once the bound passes, instead of waiting for ever.
        await asyncio.wait_for(limiter.charge(meter, 1, publish=True), 3)
        await asyncio.wait_for(limiter.charge(meter, 1), 3)
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_charges_in_memory_never_hand_the_event_loop_on() -> None:
    """Publishes pipelined on a few connections must stay in step to reach the broker in one
    batch: a charge that waits a turn of the loop (a lock held while a thread sweeps the
    window) puts them out of step. Between charges the loop turns once; nothing more."""
    plan = Plan(name="mem", quota="100000/day", publish_rate="100000/minute")
    limiter = Limiter(Limits(plan=plan))
    await limiter.start(lambda address: None)
    topic = publish_topic()
    try:
        async with counting_turns() as loop:
            meter = await limiter.meter(connection(), principal("pat"), topic, Mode.PUBLISH)
            assert meter is not None
            await asyncio.sleep(0)
            before = loop.turns
            for _ in range(50):
                await limiter.charge(meter, 1, publish=True)
                await asyncio.sleep(0)
            assert loop.turns - before <= 51
        assert limiter.counted["mem"] == 50
    finally:
        await limiter.stop()


def test_memory_counters_hold_a_rate_and_forget_expired_windows() -> None:
    async def scenario() -> None:
        storage = LocalStorage()
        rate = parse("3/second")
        limiter = MovingWindowRateLimiter(storage)
        assert [await limiter.hit(rate, "pat") for _ in range(4)] == [True, True, True, False]
        quota = parse("2/second")
        fixed = FixedWindowRateLimiter(storage)
        assert [await fixed.hit(quota, "pat") for _ in range(3)] == [True, True, False]
        await asyncio.sleep(1.1)  # both windows pass; the next call sweeps them
        assert await fixed.hit(quota, "pat")
        assert await limiter.hit(rate, "pat")
        assert len(storage.events) == 1 and len(storage.storage) == 1

    asyncio.run(scenario())


@pytest.mark.redis
async def test_a_rate_and_a_quota_of_the_same_window_both_hold_on_redis() -> None:
    """Their counters are apart: a moving window and a fixed one cannot share a Redis key."""
    plan = Plan(name="same", quota="3/minute", publish_rate="3/minute")
    settings = Limits(
        plan=plan, storage="redis://127.0.0.1:6379/0", namespace=f"same-{uuid.uuid4().hex[:10]}"
    )
    limiter = Limiter(settings)
    await limiter.start(lambda address: None)
    topic = publish_topic()
    storage: Any = limiter.storage
    try:
        meter = await limiter.meter(connection(), principal("sam"), topic, Mode.PUBLISH)
        assert meter is not None
        for _ in range(3):
            await limiter.charge(meter, 1, publish=True)
        with pytest.raises(QuotaExceeded) as refused:
            await limiter.charge(meter, 1, publish=True)
        assert refused.value.refusal.limit == "publish_rate"
        assert 1 <= refused.value.refusal.retry_after <= 60
        assert limiter.counted["same"] == 3
    finally:
        await limiter.stop()
        await storage.bridge.get_connection().aclose()
