"""Content distribution (WebSub 7): claim due deliveries, POST them, record the outcome.

Each process runs one :class:`DeliveryWorker`. It claims due rows from the database (so any
worker can deliver what any worker recorded), runs at most ``concurrency`` requests at once and
at most ``per_subscriber_concurrency`` to one subscription, each bounded by
``delivery_timeout``: a slow or dead callback holds only its own share, never the others'.

Outcomes: 2xx is done; 410 Gone ends the subscription (WebSub 7 allows it); anything else,
a timeout or a refused address is retried with exponential backoff and jitter until
``max_attempts``. The subscription itself stays until its lease ends, as the spec requires.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence

import httpx

from .outbound import Outbound
from .repository import Claimed, Repository
from .settings import WebSubSettings
from .ssrf import CallbackRefused

logger = logging.getLogger("fastapi_streaming.websub")

#: The event's id: the same on every attempt and every worker, so a receiver can drop repeats.
EVENT_ID_HEADER = "X-Hub-Event-Id"
#: Which attempt this is, from 1.
ATTEMPT_HEADER = "X-Hub-Attempt"
SIGNATURE_HEADER = "X-Hub-Signature"


def signature(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature`` value: ``sha256=`` and the hex HMAC of the exact body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def distribution_headers(claimed: Claimed) -> dict[str, str]:
    headers = {
        "Content-Type": claimed.content_type,
        "Link": f'<{claimed.hub_url}>; rel="hub", <{claimed.self_url}>; rel="self"',
        EVENT_ID_HEADER: claimed.event_id,
        ATTEMPT_HEADER: str(claimed.attempts),
    }
    if claimed.secret:
        headers[SIGNATURE_HEADER] = signature(claimed.secret, claimed.body)
    return headers


class DeliveryWorker:
    """Delivers this process's share of the due deliveries, forever (until cancelled).

    A worker holds up to twice ``per_subscriber_concurrency`` claimed deliveries of one
    subscription: half of them in flight, the rest waiting for a slot, so the next request to a
    fast subscriber starts as soon as one ends instead of after the next claim. A waiting
    delivery starts within one ``delivery_timeout``, and the claim lasts two of them plus a
    margin, so no other worker can take it meanwhile. Successes are marked in batches.
    """

    def __init__(
        self,
        settings: WebSubSettings,
        repo: Repository,
        outbound: Outbound,
        admit: Callable[[Sequence[Claimed]], Awaitable[dict[int, str]]] | None = None,
    ) -> None:
        self.settings = settings
        self.repo = repo
        self.outbound = outbound
        #: Given claimed deliveries, the ids of those over their subscriber's quota, each with
        #: the reason; those are not attempted.
        self.admit = admit
        #: Claimed, unfinished deliveries per subscription (in flight or waiting for a slot).
        self.busy: Counter[int] = Counter()
        self._slots: dict[int, asyncio.Semaphore] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self._succeeded: list[Claimed] = []
        self._to_mark = asyncio.Event()
        self.delivered = 0
        self.failures = 0
        #: Subscriptions ended by their callback answering 410 Gone.
        self.gone = 0
        #: Deliveries not attempted because their subscriber's quota was spent.
        self.over_quota = 0
        #: Failed attempts followed by another one, and those after which the subscription
        #: ran out of attempts for the event (it is given up), by topic address.
        self.retries: Counter[str] = Counter()
        self.dead: Counter[str] = Counter()

    def wake(self) -> None:
        """New deliveries were recorded here: look for due ones now, not at the next poll."""
        self._changed.set()

    async def run(self) -> None:
        settings = self.settings
        marker = asyncio.create_task(self._mark_succeeded(), name="websub delivery marker")
        try:
            while True:
                self._changed.clear()
                free = settings.concurrency - len(self._tasks)
                if free > 0:
                    try:
                        claimed = await self.repo.claim(
                            free, dict(+self.busy), 2 * settings.per_subscriber_concurrency
                        )
                    except Exception:
                        logger.exception("Could not claim WebSub deliveries; retrying shortly")
                        claimed = []
                    for item in await self._over_quota(claimed):
                        self._start(item)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), settings.poll_interval)
        finally:
            for task in (*self._tasks, marker):
                task.cancel()
            await asyncio.gather(*self._tasks, marker, return_exceptions=True)

    async def _over_quota(self, claimed: list[Claimed]) -> list[Claimed]:
        """End the deliveries over their subscriber's quota unattempted (counted); return the
        rest."""
        if self.admit is None or not claimed:
            return claimed
        try:
            refused = await self.admit(claimed)
        except Exception:
            logger.exception("Could not check WebSub deliveries against their quotas")
            return claimed
        for item in claimed:
            reason = refused.get(item.id)
            if reason is not None:
                self.over_quota += 1
                try:
                    await self.repo.skip(item, reason)
                except Exception:
                    logger.exception("Could not record a delivery skipped over its quota")
        return [item for item in claimed if item.id not in refused]

    def _start(self, claimed: Claimed) -> None:
        self.busy[claimed.subscription_id] += 1
        task = asyncio.create_task(self._attempt(claimed), name=f"websub delivery {claimed.id}")
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._changed.set()

    def _slot(self, subscription_id: int) -> asyncio.Semaphore:
        slot = self._slots.get(subscription_id)
        if slot is None:
            slot = asyncio.Semaphore(self.settings.per_subscriber_concurrency)
            self._slots[subscription_id] = slot
        return slot

    async def _attempt(self, claimed: Claimed) -> None:
        sid = claimed.subscription_id
        try:
            async with self._slot(sid):
                error = await self._post(claimed)
            if error is None:
                self.delivered += 1
                self._succeeded.append(claimed)
                self._to_mark.set()
            elif error == "gone":
                self.gone += 1
                logger.info("Callback %s answered 410 Gone; unsubscribed", claimed.callback)
                await self.repo.remove_subscription_by_id(sid)
            else:
                self.failures += 1
                if claimed.attempts >= self.settings.max_attempts:
                    self.dead[claimed.topic] += 1
                else:
                    self.retries[claimed.topic] += 1
                logger.info(
                    "Delivery of %s to %s failed (attempt %d): %s",
                    claimed.event_id,
                    claimed.callback,
                    claimed.attempts,
                    error,
                )
                await self.repo.failed(claimed, error, random.random())
        except Exception:
            # The claim runs out and another attempt follows; nothing is lost.
            logger.exception("Could not record the outcome of a WebSub delivery")
        finally:
            self.busy[sid] -= 1
            if self.busy[sid] <= 0:
                del self.busy[sid]
                self._slots.pop(sid, None)

    async def _mark_succeeded(self) -> None:
        """Mark successful deliveries done, all that piled up in one statement."""
        while True:
            await self._to_mark.wait()
            self._to_mark.clear()
            done, self._succeeded = self._succeeded, []
            try:
                await self.repo.succeeded_many(done)
            except Exception:
                # Their claims run out and they are delivered again (receivers see the id).
                logger.exception("Could not mark %d WebSub deliveries done", len(done))

    async def _post(self, claimed: Claimed) -> str | None:
        """None on success, ``"gone"`` on 410, else what went wrong."""
        try:
            answer = await self.outbound.post(
                claimed.callback, claimed.body, distribution_headers(claimed)
            )
        except CallbackRefused as exc:
            return f"refused: {exc}"
        except TimeoutError:
            return f"no answer within {self.settings.delivery_timeout} s"
        except httpx.HTTPError as exc:
            return f"request failed: {exc!r}"
        if 200 <= answer.status < 300:
            return None
        if answer.status == 410:
            return "gone"
        return f"answered HTTP {answer.status}"
