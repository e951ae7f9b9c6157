"""Enforcing plans: counters in memory (one process) or Redis (every worker and host).

The ``limits`` library keeps the counters: a fixed window for quotas (one counter per
principal and window, so a batch of events is one ``INCRBY``) and a moving window for publish
rates (exact for the small counts a rate has). See docs/decisions.md for the measurements.

Publishes, requests and control messages are charged as they come. On Redis, a publish under
a plan with a publish rate and a quota of a hundred or more spends units its worker reserved
ahead (:mod:`.budgets`) and does not wait for Redis; other charges wait for their round trip.
Delivered events are never charged one by one: the fan-out counts the events of each topic
stream anyway, and every ``flush_interval`` seconds the limiter charges each principal the
events its connections were sent since the last flush, in one call per principal. A principal
can therefore overshoot its quota by what its connections receive in one interval; then its
streams end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from limits.aio.storage import RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter, RateLimiter
from starlette.requests import HTTPConnection

from ..security.principal import Principal
from ..stopping import cancel_until_done
from ..topics import Mode, Topic
from .answers import QuotaExceeded, Refusal, seconds_until
from .batch import PublishCharges, hit_quotas, pipelined_counters
from .budgets import Budgets
from .memory import LocalStorage
from .plans import Plan, PlanChooser, choose_plan
from .timeouts import CLIENT_OPTIONS, bounded

logger = logging.getLogger("fastapi_streaming.limits")

#: Seconds a concurrent-connections counter outlives its last change (a worker that died
#: without releasing its connections stops counting against the principal after this).
CONNECTIONS_EXPIRY = 24 * 3600


def default_key(principal: Principal | None, connection: HTTPConnection) -> str:
    """Whom counters belong to: the principal's subject, else the client's address."""
    if principal is not None:
        return principal.subject
    host = connection.client.host if connection.client else "unknown"
    return f"address:{host}"


@dataclass(frozen=True)
class Limits:
    """How a streaming API enforces plans (``StreamingAPI(limits=Limits(...))``).

    Args:
        plan: the plan of every topic that names none: a :class:`Plan`, a
            :class:`PlanByClaim`, or a function of the principal and the connection.
        storage: where counters live: ``memory://`` (this process only) or a Redis URL
            (``redis://host:6379/0``), shared by every worker and host that uses it.
        key: whom counters belong to; by default the principal's subject (a token's ``sub``),
            or the client's address for anonymous clients.
        flush_interval: seconds between charges of delivered events (see the module doc).
        namespace: prefixes every counter, so several APIs can share one Redis.
        reserve: on Redis, let each worker reserve blocks of publish rates and quotas ahead
            of need (see the plans guide for the tolerance); False charges every publish
            exactly, each waiting for its round trip.
    """

    plan: Plan | PlanChooser | None = None
    storage: str = "memory://"
    key: Callable[[Principal | None, HTTPConnection], str] = default_key
    flush_interval: float = 1.0
    namespace: str = "fastapi-streaming"
    reserve: bool = True


@dataclass(frozen=True)
class Meter:
    """One principal under one plan: what its counters are keyed by."""

    plan: Plan
    key: str
    namespace: str

    @property
    def ids(self) -> tuple[str, str, str]:
        return (self.namespace, self.plan.name, self.key)

    @property
    def rate_ids(self) -> tuple[str, str, str, str]:
        """The publish rate's counter: apart from the quota's, which may have the same
        amount and window (on Redis a moving window and a fixed one cannot share a key)."""
        return (*self.ids, "publish_rate")

    @cached_property
    def quota_key(self) -> str:
        """The quota's counter, as the ``limits`` library names it: made once per meter, not
        at every flush (a connection keeps its meter)."""
        assert self.plan.quota_item is not None
        return self.plan.quota_item.key_for(*self.ids)

    @property
    def connections_key(self) -> str:
        return f"{self.namespace}/connections/{self.plan.name}/{self.key}"


def open_storage(url: str, namespace: str) -> Storage:
    if url.startswith("memory://"):
        return LocalStorage()
    if url.startswith(("redis://", "rediss://", "async+redis://", "async+rediss://")):
        if not url.startswith("async+"):
            url = "async+" + url
        options: dict[str, Any] = dict(CLIENT_OPTIONS)  # a URL's own options still win
        return RedisStorage(url, implementation="redispy", key_prefix=namespace, **options)
    raise ValueError(
        f"Unknown limits storage {url!r}: use 'memory://' (one process) or 'redis://host:port/db'."
    )


class Limiter:
    """The counters of one streaming API and the connections they may end."""

    def __init__(self, settings: Limits | None = None) -> None:
        self.settings = settings or Limits()
        self.leases: set[Lease] = set()
        #: Refusals so far, by (plan, limit): what metrics report as throttles.
        self.throttles: Counter[tuple[str, str]] = Counter()
        #: Events counted (charged to a quota) by plan.
        self.counted: Counter[str] = Counter()
        #: Refusals since usage analytics last took them, by (principal key, plan, limit);
        #: kept only while ``track_principals`` (analytics takes them regularly).
        self.throttled_by: Counter[tuple[str, str, str]] = Counter()
        self.track_principals = False
        self._pending: Counter[Meter] = Counter()
        self._stored_plans: dict[tuple[str, str], Plan] = {}
        self._events_of: Callable[[str], int | None] = lambda address: None
        self._task: asyncio.Task[None] | None = None
        self._storage: Storage | None = None
        self._quota: RateLimiter | None = None
        self._rate: RateLimiter | None = None
        #: Publishes' rate and quota charges, pipelined (False: the storage cannot).
        self._publish_charges: PublishCharges | bool | None = None
        #: Units reserved ahead for publishes (None: charged exactly).
        self.budgets: Budgets | None = None

    @property
    def storage(self) -> Storage:
        if self._storage is None:
            self._storage = open_storage(self.settings.storage, self.settings.namespace)
            self._quota = FixedWindowRateLimiter(self._storage)
            self._rate = MovingWindowRateLimiter(self._storage)
        return self._storage

    async def start(self, events_of: Callable[[str], int | None]) -> None:
        """Begin charging delivered events; ``events_of(address)`` is the fan-out's count of
        events sent to the clients of a concrete address (None once nobody listens)."""
        self._events_of = events_of
        self.storage  # noqa: B018 - fail at startup on a bad storage URL, not on first use
        self._task = asyncio.create_task(self._run(), name="fastapi-streaming limits")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_until_done([self._task])
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.flush()
        if self.budgets is not None:
            await self.budgets.stop()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.flush_interval)
            try:
                await self.flush()
                if self.budgets is not None:
                    await self.budgets.sweep()
            except Exception:
                logger.exception("Could not charge delivered events to their plans")

    # -- choosing -----------------------------------------------------------------------------

    async def meter(
        self,
        connection: HTTPConnection,
        principal: Principal | None,
        topic: Topic,
        mode: Mode,
    ) -> Meter | None:
        """The meter of this principal on this topic mode, or None when no plan applies."""
        operation = topic.operation(mode)
        choice = getattr(operation, "limit", None) or self.settings.plan
        plan = await choose_plan(choice, principal, connection)
        if plan is None:
            return None
        key = self.settings.key(principal, connection)
        return Meter(plan, key, self.settings.namespace)

    # -- charging -----------------------------------------------------------------------------

    async def charge(self, meter: Meter, cost: int = 1, *, publish: bool = False) -> None:
        """Count ``cost`` events now (and a publish against the rate); raise if refused."""
        self.storage  # noqa: B018 - opened on first use
        assert self._quota is not None and self._rate is not None
        plan = meter.plan
        if publish and plan.publish_item is not None and plan.quota_item is not None:
            if self._publish_charges is None:
                bridge = pipelined_counters(self.storage)
                self._publish_charges = PublishCharges(bridge) if bridge is not None else False
                if bridge is not None and self.settings.reserve:
                    self.budgets = Budgets(bridge)
            if isinstance(self._publish_charges, PublishCharges):
                if self._spend_reserved(meter, cost):
                    return
                # Both in one round trip, with the other publishes of the moment.
                await self._charge_publish(self._publish_charges, meter, cost)
                return
        if publish and plan.publish_item is not None:
            if not await self._hit(self._rate, plan.publish_item, meter, 1, meter.rate_ids):
                raise QuotaExceeded(await self.refuse(meter, "publish_rate"))
        if plan.quota_item is not None:
            self.counted[plan.name] += cost
            if not await self._hit(self._quota, plan.quota_item, meter, cost):
                raise QuotaExceeded(await self.refuse(meter, "quota"))

    def _spend_reserved(self, meter: Meter, cost: int) -> bool:
        """Charge a publish from units this worker reserved ahead, if it holds enough (a
        reservation starts when it holds little); False: charge it exactly."""
        budgets = self.budgets
        if budgets is None:
            return False
        budget = budgets.budget(meter, meter.rate_ids, meter.ids)
        if budget is None or not budgets.spend(budget, cost):
            return False
        self.counted[meter.plan.name] += cost
        return True

    async def _charge_publish(self, charges: PublishCharges, meter: Meter, cost: int) -> None:
        plan = meter.plan
        try:
            rate_ok, quota_ok = await charges.charge(
                meter.rate_ids, meter.ids, plan.publish_item, plan.quota_item, cost
            )
        except Exception:
            # Counters that cannot be reached do not take the API down with them.
            logger.warning("Limits storage unreachable; %s not counted", meter, exc_info=True)
            return
        if not rate_ok:
            raise QuotaExceeded(await self.refuse(meter, "publish_rate"))
        self.counted[plan.name] += cost
        if not quota_ok:
            raise QuotaExceeded(await self.refuse(meter, "quota"))

    async def admit(self, meter: Meter, events: int) -> int:
        """How many of ``events`` deliveries still fit in the quota; charges those.

        For WebSub: one look at the window and one charge per principal and batch of claimed
        deliveries, not one per delivery. Workers admitting at the same moment may together
        let a batch's worth more through.
        """
        item = meter.plan.quota_item
        if item is None or events <= 0:
            return events
        self.storage  # noqa: B018 - opened on first use
        assert self._quota is not None
        try:
            stats = await bounded(self._quota.get_window_stats(item, *meter.ids))
        except Exception:
            logger.warning("Limits storage unreachable; %s not counted", meter, exc_info=True)
            return events
        allowed = max(0, min(events, stats.remaining))
        if allowed:
            self.counted[meter.plan.name] += allowed
            await self._hit(self._quota, item, meter, allowed)
        if allowed < events:
            self._throttled(meter.key, meter.plan.name, "quota", events - allowed)
        return allowed

    def stored_meter(self, plan: str, key: str, quota: str) -> Meter:
        """The meter of a subscription that recorded its plan (a WebSub subscriber)."""
        found = self._stored_plans.get((plan, quota))
        if found is None:
            found = self._stored_plans[(plan, quota)] = Plan(name=plan, quota=quota)
        return Meter(found, key, self.settings.namespace)

    def count(self, meter: Meter, events: int = 1) -> None:
        """Count events to be charged at the next flush (messages that refuse nothing)."""
        if meter.plan.quota_item is not None:
            self._pending[meter] += events

    async def _hit(
        self,
        limiter: RateLimiter,
        item: Any,
        meter: Meter,
        cost: int,
        ids: tuple[str, ...] | None = None,
    ) -> bool:
        try:
            return await bounded(limiter.hit(item, *(ids or meter.ids), cost=cost))
        except Exception:
            # Counters that cannot be reached do not take the API down with them.
            logger.warning("Limits storage unreachable; %s not counted", meter, exc_info=True)
            return True

    async def refuse(self, meter: Meter, limit: str) -> Refusal:
        """Count a refusal by ``limit`` and describe it."""
        self._throttled(meter.key, meter.plan.name, limit)
        return await self.refusal(meter, limit)

    def _throttled(self, key: str, plan: str, limit: str, times: int = 1) -> None:
        self.throttles[(plan, limit)] += times
        if self.track_principals:
            self.throttled_by[(key, plan, limit)] += times

    async def refusal(self, meter: Meter, limit: str) -> Refusal:
        """The refusal of ``limit``, with when the principal may come back."""
        plan, now = meter.plan, time.time()
        if limit in ("quota", "publish_rate"):
            item = plan.quota_item if limit == "quota" else plan.publish_item
            limiter = self._quota if limit == "quota" else self._rate
            assert item is not None and limiter is not None
            try:
                ids = meter.ids if limit == "quota" else meter.rate_ids
                stats = await bounded(limiter.get_window_stats(item, *ids))
                # Rounded up, but never past the window (Redis TTLs are whole seconds).
                retry_after = min(seconds_until(stats.reset_time, now), item.get_expiry())
            except Exception:
                retry_after = item.get_expiry()
            return Refusal(plan.name, limit, item.amount, item.get_expiry(), retry_after)
        if limit == "max_connections":
            return Refusal(plan.name, limit, plan.max_connections or 0, 0, 1)
        duration = int(plan.max_duration or 0)
        return Refusal(plan.name, limit, 1, duration, 1)

    async def flush(self) -> None:
        """Charge every principal the events its connections were sent since the last flush
        (in one Redis round trip for all of them), and end the streams of those whose quota
        is spent."""
        pending, self._pending = self._pending, Counter()
        for lease in tuple(self.leases):
            lease.collect(pending)
        charges = [
            (meter, meter.plan.quota_item, events)
            for meter, events in pending.items()
            if meter.plan.quota_item is not None and events > 0
        ]
        for meter, _, events in charges:
            self.counted[meter.plan.name] += events
        for (spent, _, _), allowed in zip(charges, await self._hit_quotas(charges), strict=True):
            if allowed:
                continue
            refusal = await self.refuse(spent, "quota")
            for lease in tuple(self.leases):
                if spent in lease.meters:
                    lease.end(refusal)

    async def _hit_quotas(self, charges: Sequence[tuple[Meter, Any, int]]) -> list[bool]:
        """Whether each (meter, quota, events) charge still fits its quota, charging it."""
        quota = self._quota
        assert quota is not None

        async def one_by_one(meter: Meter, item: Any, events: int) -> bool:
            return await self._hit(quota, item, meter, events)

        return await hit_quotas(self.storage, charges, lambda meter: meter.quota_key, one_by_one)

    # -- connections --------------------------------------------------------------------------

    async def open(
        self,
        connection: HTTPConnection,
        context: Sequence[object],
        end: Callable[[Refusal], None],
    ) -> Lease:
        """A lease for one connection; :meth:`Lease.add` charges each topic it joins."""
        principal = next((item for item in context if isinstance(item, Principal)), None)
        lease = Lease(self, connection, principal, end)
        self.leases.add(lease)
        return lease

    async def _take_slot(self, meter: Meter) -> None:
        limit = meter.plan.max_connections
        if limit is None:
            return
        key = meter.connections_key
        try:
            held = await bounded(self.storage.incr(key, CONNECTIONS_EXPIRY, 1))
        except Exception:
            logger.warning("Limits storage unreachable; connection not counted", exc_info=True)
            raise _NotCounted() from None
        if held > limit:
            await self._free_slot(meter)
            raise QuotaExceeded(await self.refuse(meter, "max_connections"))

    async def _free_slot(self, meter: Meter) -> None:
        with contextlib.suppress(Exception):
            await bounded(self.storage.incr(meter.connections_key, CONNECTIONS_EXPIRY, -1))


class _NotCounted(Exception):
    """The connection was let in without being counted (the storage was unreachable)."""


class _Tracked:
    __slots__ = ("meter", "seen")

    def __init__(self, meter: Meter, seen: int) -> None:
        self.meter = meter
        self.seen = seen


class Lease:
    """What one connection holds under its plans: slots, a duration timer, tracked topics."""

    def __init__(
        self,
        limiter: Limiter,
        connection: HTTPConnection,
        principal: Principal | None,
        end: Callable[[Refusal], None],
    ) -> None:
        self.limiter = limiter
        self.connection = connection
        self.principal = principal
        self.end = end
        self.meters: set[Meter] = set()
        self._slots: list[Meter] = []
        self._timers: list[asyncio.TimerHandle] = []
        self._tracked: dict[str, _Tracked] = {}
        self._topic_meters: dict[tuple[str, Mode], Meter | None] = {}

    async def meter(self, topic: Topic, mode: Mode) -> Meter | None:
        key = (topic.address, mode)
        if key not in self._topic_meters:
            meter = await self.limiter.meter(self.connection, self.principal, topic, mode)
            if meter is not None and meter not in self.meters:
                await self._hold(meter)
            self._topic_meters[key] = meter
        return self._topic_meters[key]

    async def _hold(self, meter: Meter) -> None:
        """First use of a plan on this connection: take a connection slot, arm the timer."""
        try:
            await self.limiter._take_slot(meter)
            if meter.plan.max_connections is not None:
                self._slots.append(meter)
        except _NotCounted:
            pass
        self.meters.add(meter)
        if meter.plan.max_duration is not None:
            refusal = await self.limiter.refusal(meter, "max_duration")
            self._timers.append(
                asyncio.get_running_loop().call_later(
                    meter.plan.max_duration, self._expire, refusal, meter.key
                )
            )

    def _expire(self, refusal: Refusal, key: str) -> None:
        self.limiter._throttled(key, refusal.plan, refusal.limit)
        self.end(refusal)

    async def add(self, accesses: Sequence[tuple[Topic, Mode]]) -> None:
        """Charge a request for these topics (one event per topic), taking slots on first use."""
        charges: Counter[Meter] = Counter()
        for topic, mode in accesses:
            meter = await self.meter(topic, mode)
            if meter is not None:
                charges[meter] += 1
        for meter, cost in charges.items():
            await self.limiter.charge(meter, cost)

    async def publish(self, topic: Topic) -> None:
        """Charge one publish into ``topic`` against its plan's rate and quota."""
        meter = await self.meter(topic, Mode.PUBLISH)
        if meter is not None:
            await self.limiter.charge(meter, 1, publish=True)

    async def count(self, topic: Topic, mode: Mode) -> None:
        """Count a message that refuses nothing (an unsubscribe), charged at the next flush."""
        meter = await self.meter(topic, mode)
        if meter is not None:
            self.limiter.count(meter)

    async def track(self, topic: Topic, address: str) -> None:
        """Charge the events the fan-out sends this connection on ``address`` from now on."""
        meter = await self.meter(topic, Mode.SUBSCRIBE)
        if meter is not None and meter.plan.quota_item is not None:
            self._tracked[address] = _Tracked(meter, self.limiter._events_of(address) or 0)

    def untrack(self, address: str) -> None:
        tracked = self._tracked.pop(address, None)
        if tracked is not None:
            self._collect_one(address, tracked, self.limiter._pending)

    def collect(self, into: Counter[Meter]) -> None:
        for address, tracked in self._tracked.items():
            self._collect_one(address, tracked, into)

    def _collect_one(self, address: str, tracked: _Tracked, into: Counter[Meter]) -> None:
        now = self.limiter._events_of(address)
        if now is not None and now > tracked.seen:
            into[tracked.meter] += now - tracked.seen
            tracked.seen = now

    async def release(self) -> None:
        """The connection ended: charge what it was sent, free its slots, stop its timers."""
        for timer in self._timers:
            timer.cancel()
        for address in tuple(self._tracked):
            self.untrack(address)
        self.limiter.leases.discard(self)
        for meter in self._slots:
            await self.limiter._free_slot(meter)
        self._slots.clear()
