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
import functools
import hmac
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence

from .http1 import header_lines
from .outbound import Outbound
from .repository import Claimed, Failure, Repository
from .settings import WebSubSettings
from .slots import Slots
from .ssrf import CallbackRefused

logger = logging.getLogger("fastapi_streaming.websub")

#: The event's id: the same on every attempt and every worker, so a receiver can drop repeats.
EVENT_ID_HEADER = "X-Hub-Event-Id"
#: Which attempt this is, from 1.
ATTEMPT_HEADER = "X-Hub-Attempt"
SIGNATURE_HEADER = "X-Hub-Signature"
EVENT_ID_BYTES = EVENT_ID_HEADER.lower().encode()


def signature(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature`` value: ``sha256=`` and the hex HMAC of the exact body."""
    return "sha256=" + hmac.digest(secret.encode(), body, "sha256").hex()


def distribution_fields(claimed: Claimed) -> bytes:
    """The header lines of one delivery after its ``Content-Length``. The body is the event's,
    encoded once when it was recorded; only the signature is computed per subscriber (each has
    its own secret). The lines that are the same for many deliveries are built and checked once
    (:func:`_topic_fields`, :func:`_event_field`); the attempt and the signature are digits and
    hex, nothing to check."""
    fields = b"%s%sx-hub-attempt: %d\r\n" % (
        _topic_fields(claimed.content_type, claimed.hub_url, claimed.self_url),
        _event_field(claimed.event_id),
        claimed.attempts,
    )
    if claimed.secret:
        fields += b"x-hub-signature: %s\r\n" % signature(claimed.secret, claimed.body).encode()
    return fields


@functools.lru_cache(maxsize=1024)
def _topic_fields(content_type: str, hub_url: str, self_url: str) -> bytes:
    link = f'<{hub_url}>; rel="hub", <{self_url}>; rel="self"'
    return header_lines(
        [(b"content-type", content_type.encode("latin-1")), (b"link", link.encode())]
    )


@functools.lru_cache(maxsize=4096)
def _event_field(event_id: str) -> bytes:
    return header_lines([(EVENT_ID_BYTES, event_id.encode())])


class DeliveryWorker:
    """Delivers this process's share of the due deliveries, forever (until cancelled).

    Claims come in batches: the worker holds up to twice ``concurrency`` claimed deliveries,
    at most ``concurrency`` of them in flight and the rest waiting for a slot, and claims again
    (one transaction for the batch) once room for half of ``concurrency`` more is free, not
    after every delivery; the claim runs while the waiting ones are sent, so a slow database
    round trip does not leave the worker idle. Per
    subscription it holds up to twice ``per_subscriber_concurrency``, half of them in flight.
    A waiting delivery starts within about one ``delivery_timeout``, and the claim lasts two of
    them plus a margin; one whose claim runs short before it could start is left unattempted
    (it falls due again when the claim runs out), so no other worker can take a delivery this
    one still attempts. Outcomes, successes and failures alike, are recorded in batches (one
    transaction for all that piled up while the previous one ran).
    """

    def __init__(
        self,
        settings: WebSubSettings,
        repo: Repository,
        outbound: Outbound,
        admit: Callable[[Sequence[Claimed]], Awaitable[dict[int, str]]] | None = None,
        delivered_by: Counter[tuple[str | None, str | None, str]] | None = None,
    ) -> None:
        self.settings = settings
        self.repo = repo
        self.outbound = outbound
        #: Given claimed deliveries, the ids of those over their subscriber's quota, each with
        #: the reason; those are not attempted.
        self.admit = admit
        #: Where successful deliveries are counted by (principal, plan, topic address), a
        #: batch of outcomes at a time, when usage analytics want them.
        self.delivered_by = delivered_by
        #: Claimed, unfinished deliveries per subscription (in flight or waiting for a slot).
        self.busy: Counter[int] = Counter()
        self._slots: dict[int, Slots] = {}
        self._in_flight = Slots(settings.concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self._succeeded: list[Claimed] = []
        self._failed: list[Failure] = []
        self._to_record = asyncio.Event()
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
        #: Deliveries left unattempted because their claim ran short while they waited.
        self.expired_claims = 0

    @property
    def holding(self) -> int:
        """Claimed deliveries this worker holds at most (in flight or waiting)."""
        return 2 * self.settings.concurrency

    @property
    def _batch(self) -> int:
        return max(1, self.settings.concurrency // 2)

    def wake(self) -> None:
        """New deliveries were recorded here: look for due ones now, not at the next poll."""
        self._changed.set()

    async def run(self) -> None:
        settings = self.settings
        recorder = asyncio.create_task(self._record_outcomes(), name="websub outcome recorder")
        try:
            while True:
                self._changed.clear()
                free = self.holding - len(self._tasks)
                if free > 0:
                    try:
                        claimed = await self.repo.claim(
                            free, dict(+self.busy), 2 * settings.per_subscriber_concurrency
                        )
                    except Exception:
                        logger.exception("Could not claim WebSub deliveries; retrying shortly")
                        claimed = []
                    at = asyncio.get_running_loop().time()
                    for item in await self._over_quota(claimed):
                        self._start(item, at)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), settings.poll_interval)
        finally:
            for task in (*self._tasks, recorder):
                task.cancel()
            await asyncio.gather(*self._tasks, recorder, return_exceptions=True)

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

    def _start(self, claimed: Claimed, claimed_at: float) -> None:
        self.busy[claimed.subscription_id] += 1
        # Unnamed: naming thousands of tasks a second showed in the profile.
        task = asyncio.create_task(self._attempt(claimed, claimed_at))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        # Claim again once a batch of room (half of ``concurrency``) is free: not after every
        # delivery, and early enough that the claim is back before the waiting ones ran out.
        if self.holding - len(self._tasks) >= self._batch:
            self._changed.set()

    def _slot(self, subscription_id: int) -> Slots:
        slot = self._slots.get(subscription_id)
        if slot is None:
            slot = Slots(self.settings.per_subscriber_concurrency)
            self._slots[subscription_id] = slot
        return slot

    def _claim_runs_short(self, claimed_at: float) -> bool:
        """Too little of the claim is left for a whole attempt (plus a margin)."""
        settings = self.settings
        left = claimed_at + settings.claim_seconds - asyncio.get_running_loop().time()
        return left < settings.delivery_timeout + 2.0

    async def _attempt(self, claimed: Claimed, claimed_at: float) -> None:
        sid = claimed.subscription_id
        try:
            async with self._slot(sid), self._in_flight:
                if self._claim_runs_short(claimed_at):
                    self.expired_claims += 1
                    return
                error = await self._post(claimed)
            if error is None:
                self.delivered += 1
                self._succeeded.append(claimed)
                self._to_record.set()
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
                self._failed.append(Failure(claimed, error, random.random()))
                self._to_record.set()
        except Exception:
            # The claim runs out and another attempt follows; nothing is lost.
            logger.exception("Could not record the outcome of a WebSub delivery")
        finally:
            self.busy[sid] -= 1
            if self.busy[sid] <= 0:
                del self.busy[sid]
                self._slots.pop(sid, None)

    async def _record_outcomes(self) -> None:
        """Record every outcome that piled up, in one transaction per batch."""
        while True:
            await self._to_record.wait()
            self._to_record.clear()
            done, self._succeeded = self._succeeded, []
            failed, self._failed = self._failed, []
            if done and self.delivered_by is not None:
                # A subscription made before principals were recorded may still know its
                # subscriber by the quota it is charged to.
                self.delivered_by.update(
                    [(c.principal or c.quota_key, c.plan or c.quota_plan, c.topic) for c in done]
                )
            try:
                await self.repo.record_outcomes(done, failed)
            except Exception:
                # Their claims run out and they are attempted again (receivers see the id).
                logger.exception(
                    "Could not record %d WebSub delivery outcomes", len(done) + len(failed)
                )

    async def _post(self, claimed: Claimed) -> str | None:
        """None on success, ``"gone"`` on 410, else what went wrong."""
        try:
            answer = await self.outbound.post(
                claimed.callback, claimed.body, distribution_fields(claimed)
            )
        except CallbackRefused as exc:
            return f"refused: {exc}"
        except TimeoutError:
            return f"no answer within {self.settings.delivery_timeout} s"
        except OSError as exc:  # refused or dropped connections, TLS, invalid answers
            return f"request failed: {exc!r}"
        if 200 <= answer.status < 300:
            return None
        if answer.status == 410:
            return "gone"
        return f"answered HTTP {answer.status}"
