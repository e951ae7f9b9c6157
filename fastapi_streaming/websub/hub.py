"""The WebSub hub of a Streaming API: subscription requests, verification, and the workers.

``StreamingAPI(websub=...)`` creates one :class:`WebSubHub`. During the app's lifespan it keeps
a database connection, joins the fan-out of every subscribed topic (:mod:`.intake`), runs a
delivery worker (:mod:`.delivery`) and two housekeeping loops: one that follows which topics
have subscriptions (subscriptions made through other worker processes), and one that removes
expired subscriptions and old records.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import Request

from ..errors import Forbidden, PayloadTooLarge, StreamingError
from ..owners import NO_PLAN, SERVER, default_owner_key
from ..security.access import Access
from ..security.principal import Principal
from ..stopping import cancel_until_done
from ..topics import Mode
from ..transports.http import read_body
from .delivery import DeliveryWorker
from .intake import EventIntake
from .intent import HubError, Intent, IntentReader, parse_form
from .outbound import Outbound
from .ratelimit import RateLimiter
from .repository import Claimed, NewSubscription, Repository
from .settings import WebSubSettings
from .ssrf import CallbackGuard, CallbackRefused
from .verification import Verifier

if TYPE_CHECKING:
    from ..context import StreamingContext
    from ..runtime import StreamingRuntime

logger = logging.getLogger("fastapi_streaming.websub")

#: Characters left as they are in the address part of a topic URL.
_ADDRESS_SAFE = "/-._~!$&'()*+,;=:@"


@dataclass(frozen=True)
class Urls:
    """The hub's URL and one topic's canonical (``self``) URL."""

    hub: str
    topic: str


@dataclass(frozen=True)
class Subscriber:
    """Who asked for a subscription: whom usage analytics count its deliveries to, under
    which plan, and the plan quota (name, counter key, amount) they are charged to, if any."""

    principal: str | None = None
    plan: str | None = None
    quota_plan: str | None = None
    quota_key: str | None = None
    quota: str | None = None


@dataclass
class _Running:
    repo: Repository
    outbound: Outbound
    verifier: Verifier
    intake: EventIntake
    worker: DeliveryWorker
    tasks: list[asyncio.Task[None]]


class WebSubHub:
    """A W3C WebSub hub over the topics of one :class:`~fastapi_streaming.StreamingAPI`."""

    def __init__(self, streaming: StreamingContext, settings: WebSubSettings) -> None:
        self.streaming = streaming
        self.settings = settings
        self.guard = CallbackGuard(settings)
        #: Where clients reach the app: the hub's own setting, else the streaming API's.
        self.public_url = settings.public_url or streaming.public_url
        self.reader = IntentReader(settings, streaming.topics, self.public_url)
        self.limiter = RateLimiter(settings.rate_limit, settings.rate_period)
        self._running: _Running | None = None
        self._verifying: set[asyncio.Task[None]] = set()
        self._verify_slots: asyncio.Semaphore | None = None
        #: Deliveries that succeeded in this process, by (principal, plan, topic address),
        #: while usage analytics take them (:meth:`track_usage`); None: not counted.
        self._delivered_by: Counter[tuple[str | None, str | None, str]] | None = None

    @property
    def path(self) -> str:
        """The path under which topics are discovered and the hub answers (``/streams/websub``)."""
        return self.streaming.prefix + "/websub"

    @property
    def running(self) -> _Running:
        if self._running is None:
            raise RuntimeError("The WebSub hub runs during the app's lifespan only.")
        return self._running

    @property
    def repo(self) -> Repository:
        return self.running.repo

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, runtime: StreamingRuntime) -> None:
        """Open the database, join subscribed topics, start the workers."""
        settings = self.settings
        repo = Repository(settings)
        outbound = Outbound(settings, self.guard)
        try:
            if settings.create_schema:
                await repo.create_schema()
            worker = DeliveryWorker(
                settings, repo, outbound, admit=self._admit, delivered_by=self._delivered_by
            )
            intake = EventIntake(settings, runtime, repo, worker.wake)
            # Join before serving requests, so no event of a subscribed topic passes unseen.
            await intake.sync()
        except BaseException:
            await outbound.aclose()
            await repo.close()
            raise
        tasks = [
            asyncio.create_task(intake.run(), name="websub intake"),
            asyncio.create_task(worker.run(), name="websub delivery"),
            asyncio.create_task(self._every(settings.sync_interval, intake.sync), name="sync"),
            asyncio.create_task(self._every(settings.cleanup_interval, repo.cleanup), name="gc"),
        ]
        self._verify_slots = asyncio.Semaphore(settings.verify_concurrency)
        self._running = _Running(
            repo, outbound, Verifier(settings, outbound), intake, worker, tasks
        )

    async def stop(self) -> None:
        running, self._running = self._running, None
        if running is None:
            return
        await cancel_until_done([*running.tasks, *self._verifying])
        await asyncio.gather(*running.tasks, *self._verifying, return_exceptions=True)
        with contextlib.suppress(Exception):
            await running.intake.close()
        await running.outbound.aclose()
        await running.repo.close()

    # -- usage -------------------------------------------------------------------------------

    def track_usage(self) -> None:
        """Count successful deliveries for usage analytics, which take them with
        :meth:`take_delivered` (call before :meth:`start`)."""
        if self._delivered_by is None:
            self._delivered_by = Counter()

    def take_delivered(self) -> Counter[tuple[str, str, str]]:
        """The deliveries this process made since the last call, by (principal, plan, address
        template): what a subscriber's connections would be counted. Subscriptions made before
        principals were recorded with them, and charged to no quota, count as ``(server)``."""
        counted = self._delivered_by
        taken: Counter[tuple[str, str, str]] = Counter()
        if not counted:
            return taken
        pending = counted.copy()
        counted.clear()
        templates: dict[str, str] = {}
        for (principal, plan, address), n in pending.items():
            template = templates.get(address)
            if template is None:
                found = self.streaming.topics.resolve(address)
                template = templates[address] = found[0].address if found else address
            taken[(principal or SERVER, plan or NO_PLAN, template)] += n
        return taken

    @staticmethod
    async def _every(seconds: float, job: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except Exception:
                logger.exception("WebSub housekeeping failed; trying again later")

    # -- URLs --------------------------------------------------------------------------------

    def urls(self, request: Request, address: str) -> Urls:
        base = self.public_url or str(request.base_url)
        base = base.rstrip("/") + self.path
        return Urls(hub=base + "/hub", topic=base + quote(address, safe=_ADDRESS_SAFE))

    def topics_path(self, request: Request) -> str:
        """The path prefix of topic URLs as the client sees it (with the app's root path)."""
        return str(request.scope.get("root_path", "")).rstrip("/") + self.path

    # -- subscription requests ---------------------------------------------------------------

    async def handle(self, request: Request) -> tuple[int, str, dict[str, str]]:
        """Answer a ``POST .../websub/hub``: (status, plain-text reason, headers)."""
        try:
            intent = await self._accept(request)
        except HubError as error:
            return error.status, error.reason, error.headers
        return 202, f"Accepted: the hub will now verify this {intent.mode} request.", {}

    async def _accept(self, request: Request) -> Intent:
        settings = self.settings
        client = request.client.host if request.client else "unknown"
        wait = self.limiter.acquire(client)
        if wait:
            raise HubError(
                429,
                f"Too many subscription requests: at most {settings.rate_limit} per "
                f"{settings.rate_period:g} s; retry later.",
                {"Retry-After": str(max(1, round(wait)))},
            )
        try:
            body = await read_body(request, settings.max_request_bytes)
        except PayloadTooLarge:
            raise HubError(
                413, f"The request body is larger than {settings.max_request_bytes} bytes."
            ) from None
        fields = parse_form(body, request.headers.get("content-type"))
        intent = self.reader.read(fields, self.topics_path(request))
        try:
            callback_url = self.guard.parse(intent.callback)
        except CallbackRefused as exc:
            raise HubError(400, str(exc)) from None
        running = self.running
        # Authorization first: a client without credentials makes the hub look up nothing.
        denial, valid_for, subscriber = None, None, Subscriber()
        if intent.mode == "subscribe":
            denial, valid_for, granted = await self._authorize(request, intent)
            subscriber = await self._subscriber_of(request, intent, granted)
        try:
            await self.guard.resolve(callback_url)
        except CallbackRefused as exc:
            raise HubError(400, str(exc)) from None
        if denial is not None:
            self._spawn(
                running.verifier.deny(
                    callback=intent.callback, topic_url=intent.topic_url, reason=denial
                )
            )
            return intent
        if intent.mode == "subscribe":
            await self._check_quotas(intent, callback_url.host)
        urls = self.urls(request, intent.address)
        lease = self.grant_lease(intent.requested_lease, valid_for)
        self._spawn(self._verify(intent, callback_url.host, urls, lease, subscriber))
        return intent

    async def _authorize(
        self, request: Request, intent: Intent
    ) -> tuple[str | None, float | None, list[object]]:
        """(denial reason or None, seconds the client's credentials stay valid or None, what
        authorization gave: the principal).

        A request without valid credentials is answered 401 at once, like on every transport
        (and makes the hub send nothing anywhere). A refusal of a known client is the spec's
        validation step: the answer stays 202 and the callback gets ``hub.mode=denied``.
        """
        topic, _, params = self.streaming.runtime.resolve(intent.address, Mode.SUBSCRIBE)
        try:
            granted = await self.streaming.authorize(
                request, [Access(topic, Mode.SUBSCRIBE, params)]
            )
        except Forbidden as error:
            return str(error.detail), None, []
        except StreamingError as error:
            raise HubError(error.status_code, str(error.detail), error.headers) from None
        lifetimes = [
            item.expires_in
            for item in granted
            if isinstance(item, Principal) and item.expires_in is not None
        ]
        return None, min(lifetimes, default=None), granted

    async def _subscriber_of(
        self, request: Request, intent: Intent, granted: list[object]
    ) -> Subscriber:
        """Who subscribes, recorded with the subscription so that every worker counts its
        deliveries to them: the principal and plan usage analytics count under (as they would
        a connection of theirs), and the plan quota the deliveries are charged to."""
        principal = next((item for item in granted if isinstance(item, Principal)), None)
        limits = self.streaming.limits
        if limits is None:
            subject = principal.subject if principal is not None else None
            return Subscriber(default_owner_key(subject, request), NO_PLAN)
        topic = self.streaming.runtime.resolve(intent.address, Mode.SUBSCRIBE)[0]
        meter = await limits.meter(request, principal, topic, Mode.SUBSCRIBE)
        if meter is None:
            return Subscriber(limits.settings.key(principal, request), NO_PLAN)
        if meter.plan.quota is None:
            return Subscriber(meter.key, meter.plan.name)
        return Subscriber(meter.key, meter.plan.name, meter.plan.name, meter.key, meter.plan.quota)

    async def _admit(self, claimed: Sequence[Claimed]) -> dict[int, str]:
        """The claimed deliveries over their subscriber's quota, with the reason; one check
        per subscriber and batch."""
        limits = self.streaming.limits
        if limits is None:
            return {}
        groups: dict[tuple[str, str, str], list[Claimed]] = {}
        for item in claimed:
            if item.quota_plan and item.quota_key and item.quota:
                group = (item.quota_plan, item.quota_key, item.quota)
                groups.setdefault(group, []).append(item)
        refused: dict[int, str] = {}
        for (plan, key, quota), items in groups.items():
            meter = limits.stored_meter(plan, key, quota)
            allowed = await limits.admit(meter, len(items))
            if allowed < len(items):
                reason = "over quota: " + (await limits.refusal(meter, "quota")).describe()
                refused.update((item.id, reason) for item in items[allowed:])
        return refused

    def grant_lease(self, requested: int | None, valid_for: float | None) -> int:
        """The lease for a subscription: the settings' bounds, and never past the expiry of the
        token that authorised it.

        A subscription is a stream that outlives its request, so it ends with its credentials
        like a WebSocket or SSE connection does: the subscriber renews it with a fresh token.
        """
        lease = self.settings.clamp_lease(requested)
        if valid_for is not None:
            lease = min(lease, max(0, math.floor(valid_for)))
        return lease

    async def _check_quotas(self, intent: Intent, host: str) -> None:
        settings = self.settings
        on_topic, on_host = await self.repo.count_others(
            topic=intent.address, callback=intent.callback, host=host
        )
        if on_topic >= settings.max_subscriptions_per_topic:
            raise HubError(
                409,
                f"Topic {intent.address!r} already has the maximum of "
                f"{settings.max_subscriptions_per_topic} subscriptions.",
            )
        if on_host >= settings.max_subscriptions_per_host:
            raise HubError(
                409,
                f"Callbacks on host {host!r} already hold the maximum of "
                f"{settings.max_subscriptions_per_host} subscriptions.",
            )

    def _spawn(self, work: Awaitable[None]) -> None:
        slots = self._verify_slots
        assert slots is not None

        async def limited() -> None:
            async with slots:
                await work

        task = asyncio.create_task(limited(), name="websub verification")
        self._verifying.add(task)
        task.add_done_callback(self._verifying.discard)

    async def _verify(
        self, intent: Intent, host: str, urls: Urls, lease: int, subscriber: Subscriber
    ) -> None:
        """Verify intent; apply the request only if the subscriber confirms (WebSub 5.1)."""
        running = self.running
        started = time.time()
        try:
            confirmed, why = await running.verifier.confirm(
                mode=intent.mode,
                callback=intent.callback,
                topic_url=intent.topic_url,
                lease_seconds=lease if intent.mode == "subscribe" else None,
            )
            if not confirmed:
                logger.info(
                    "WebSub %s of %s to %s not verified: %s",
                    intent.mode,
                    intent.callback,
                    intent.address,
                    why,
                )
                return
            if intent.mode == "unsubscribe":
                await running.repo.remove_subscription(intent.address, intent.callback)
                return
            async with running.intake.activating(intent.address):
                await running.repo.save_subscription(
                    NewSubscription(
                        topic=intent.address,
                        callback=intent.callback,
                        callback_host=host,
                        topic_url=intent.topic_url,
                        self_url=urls.topic,
                        hub_url=urls.hub,
                        secret=intent.secret,
                        lease_seconds=lease,
                        verified_at=started,
                        quota_plan=subscriber.quota_plan,
                        quota_key=subscriber.quota_key,
                        quota=subscriber.quota,
                        principal=subscriber.principal,
                        plan=subscriber.plan,
                    )
                )
        except Exception:
            logger.exception("WebSub verification of %s failed", intent.callback)

    # -- discovery ---------------------------------------------------------------------------

    async def discover(self, request: Request, address: str) -> tuple[Urls, Any]:
        """The URLs of a topic and its latest recorded event (body, content type) or None."""
        runtime = self.streaming.runtime
        topic, _, params = runtime.resolve(address, Mode.SUBSCRIBE)
        await self.streaming.authorize(request, [Access(topic, Mode.SUBSCRIBE, params)])
        address = topic.address_for(params)
        return self.urls(request, address), await self.repo.latest_event(address)
