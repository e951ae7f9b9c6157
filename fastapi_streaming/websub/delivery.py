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
    """Delivers this process's share of the due deliveries, forever (until cancelled)."""

    def __init__(self, settings: WebSubSettings, repo: Repository, outbound: Outbound) -> None:
        self.settings = settings
        self.repo = repo
        self.outbound = outbound
        self.busy: Counter[int] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self.delivered = 0
        self.failures = 0

    def wake(self) -> None:
        """New deliveries were recorded here: look for due ones now, not at the next poll."""
        self._changed.set()

    async def run(self) -> None:
        settings = self.settings
        try:
            while True:
                self._changed.clear()
                free = settings.concurrency - len(self._tasks)
                if free > 0:
                    try:
                        claimed = await self.repo.claim(free, dict(+self.busy))
                    except Exception:
                        logger.exception("Could not claim WebSub deliveries; retrying shortly")
                        claimed = []
                    for item in claimed:
                        self._start(item)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), settings.poll_interval)
        finally:
            for task in tuple(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _start(self, claimed: Claimed) -> None:
        self.busy[claimed.subscription_id] += 1
        task = asyncio.create_task(self._attempt(claimed), name=f"websub delivery {claimed.id}")
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._changed.set()

    async def _attempt(self, claimed: Claimed) -> None:
        try:
            error = await self._post(claimed)
            if error is None:
                self.delivered += 1
                await self.repo.succeeded(claimed)
            elif error == "gone":
                logger.info("Callback %s answered 410 Gone; unsubscribed", claimed.callback)
                await self.repo.remove_subscription_by_id(claimed.subscription_id)
            else:
                self.failures += 1
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
            self.busy[claimed.subscription_id] -= 1

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
