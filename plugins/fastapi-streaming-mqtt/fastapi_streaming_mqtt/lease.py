"""The owner of a derived topic on MQTT: the oldest live candidate.

MQTT has no compare-and-set, so the processes that may compute a derived topic elect one. Each
is a **candidate**: on a connection of its own it announces itself under
``<prefix>fastapi-streaming/leases/<topic>/<candidate id>`` six times per lease lifetime,
and listens to the others' announcements. A candidate id starts with the time it was made, so
ids sort by age, and the **oldest candidate heard within a lifetime owns the topic**. A process
that starts later never outranks a running owner.

- A candidate holds the lease only after it has been the oldest for one and a half periods of
  announcements: long enough to have heard every older candidate at least once.
- The connection's Will is an empty announcement: when a candidate's process dies, the broker
  publishes it as soon as the socket closes (or after a missed keepalive), and the others drop
  that candidate at once; one that stops announcing without it is dropped after a lifetime.
- Nothing is retained, so a dead candidate never lingers in the broker.

What it does not give: candidates on hosts whose clocks differ by more than the time between
their starts may rank the newer one first (it then takes over once it has settled, and the
older one steps down at its next renewal). Two owners at once need a broker that delivers one
candidate's announcements more than half a lifetime late.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
import uuid

import aiomqtt

from fastapi_streaming_mqtt.options import MQTTOptions

logger = logging.getLogger("fastapi_streaming.mqtt")

_UNSAFE = re.compile(r"[^a-zA-Z0-9_.:-]")


def lease_topic(options: MQTTOptions, name: str) -> str:
    """Where the candidates for ``name`` (a derived topic's channel template) announce
    themselves: one level for the name, whose characters MQTT would misread (``/``, ``+``,
    ``#``) made ``_``, with a hash of the whole keeping such names apart."""
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:12]
    return f"{options.prefix}fastapi-streaming/leases/{_UNSAFE.sub('_', name)}.{digest}"


class CandidateLease:
    """A lease on a derived topic, held by the oldest live candidate (see the module)."""

    def __init__(self, options: MQTTOptions, name: str, ttl_ms: int) -> None:
        self.name = name
        self.ttl_ms = ttl_ms
        self.topic = lease_topic(options, name)
        self._options = options
        #: Made at the first ``acquire``: sorts by age, then breaks ties at random.
        self.candidate = ""
        #: Live candidates (this one included, once heard back): when each was last heard.
        self._heard: dict[str, float] = {}
        #: Since when this candidate has been the oldest one heard, or None.
        self._oldest_since: float | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: aiomqtt.Client | None = None

    @property
    def _lifetime(self) -> float:
        return self.ttl_ms / 1000

    @property
    def _period(self) -> float:
        """How often a candidate announces itself: six times a lifetime."""
        return self._lifetime / 6

    @property
    def _settle(self) -> float:
        """How long a candidate must have been the oldest heard before it holds the lease:
        one and a half periods, so an older candidate, announcing every period, has been
        heard by then."""
        return 1.5 * self._period

    async def acquire(self) -> bool:
        """Stand if not standing yet, and then wait out the settle time once: a process that
        is the only candidate (or the oldest) holds the lease when this first call returns."""
        if not self._standing():
            await self._stand()
            await asyncio.sleep(self._settle + self._period / 2)
        return self._holds()

    async def renew(self) -> bool:
        return self._standing() and self._holds()

    async def release(self) -> None:
        """Withdraw at once: an empty announcement, then the connection closes."""
        await self._withdraw(announce=True)

    async def close(self) -> None:
        await self._withdraw(announce=True)

    def _standing(self) -> bool:
        return bool(self._tasks) and not any(task.done() for task in self._tasks)

    def _holds(self) -> bool:
        self._forget_silent()
        since = self._oldest_since
        return since is not None and time.monotonic() - since >= self._settle

    async def _stand(self) -> None:
        """Connect with an empty announcement as the Will, listen, and announce every period."""
        await self._withdraw(announce=False)
        self.candidate = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        self._heard.clear()
        self._oldest_since = None
        own = f"{self.topic}/{self.candidate}"
        options = self._options
        client = aiomqtt.Client(
            options.hostname,
            options.port,
            username=options.username,
            password=options.password,
            identifier=f"fastapi-streaming-lease-{uuid.uuid4().hex}",
            keepalive=max(int(self._lifetime), 1),
            clean_session=True,
            will=aiomqtt.Will(own, b"", qos=1),
            logger=logger,
        )
        stack = contextlib.AsyncExitStack()
        await stack.enter_async_context(client)
        self._stack, self._client = stack, client
        try:
            await client.subscribe(f"{self.topic}/+", qos=1)
        except BaseException:
            await self._withdraw(announce=False)
            raise
        self._tasks = [
            asyncio.create_task(self._listen(client), name=f"lease listener {self.name}"),
            asyncio.create_task(self._announce(client, own), name=f"lease announcer {self.name}"),
        ]

    async def _listen(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            candidate = message.topic.value.rpartition("/")[2]
            if message.payload:
                self._heard[candidate] = time.monotonic()
            else:
                self._heard.pop(candidate, None)  # withdrawn, or its Will: it is gone
            self._forget_silent()

    async def _announce(self, client: aiomqtt.Client, own: str) -> None:
        while True:
            await client.publish(own, self.candidate.encode(), qos=1)
            await asyncio.sleep(self._period)

    def _forget_silent(self) -> None:
        """Drop candidates not heard for a lifetime, and see who is the oldest now."""
        now = time.monotonic()
        for candidate, heard in list(self._heard.items()):
            if now - heard > self._lifetime:
                del self._heard[candidate]
        if self._heard and min(self._heard) == self.candidate:
            if self._oldest_since is None:
                self._oldest_since = now
        else:
            self._oldest_since = None

    async def _withdraw(self, *, announce: bool) -> None:
        """Stop listening and announcing; with ``announce``, tell the others first, so the
        next candidate need not wait for this one to fall silent."""
        tasks, self._tasks = self._tasks, []
        stack, self._stack = self._stack, None
        client, self._client = self._client, None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        self._oldest_since = None
        self._heard.clear()
        if stack is None:
            return
        if announce and client is not None:
            with contextlib.suppress(Exception):
                await client.publish(f"{self.topic}/{self.candidate}", b"", qos=1)
        with contextlib.suppress(Exception):
            await stack.aclose()
