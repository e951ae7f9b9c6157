"""The owner of a derived topic on RabbitMQ: whoever holds an exclusive queue of a fixed name.

RabbitMQ lets one connection at a time declare an exclusive queue; another connection that
declares the same name is refused with ``RESOURCE_LOCKED``. The queue is deleted when the
connection that declared it closes, whether the process let go, died (the kernel closes its
sockets) or stopped answering heartbeats. So the queue is a lease kept by the broker itself,
with no expiry to renew: holding it is keeping the connection open, and a process that takes
it over only has to try again after the owner's connection is gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import re

import aio_pika
import aiormq.exceptions
from aio_pika.abc import AbstractConnection

#: RabbitMQ queue names are AMQP short strings.
MAX_QUEUE_NAME_BYTES = 255


def lease_queue_name(exchange: str, name: str) -> str:
    """The exclusive queue standing for the lease on ``name`` among the processes publishing
    to ``exchange`` (an API's derived topics, on its exchange).

    Queue names take letters, digits and ``-_.:`` only, so other characters of a topic's
    channel template (``{``, ``}``, ``/``) become ``_``, and a hash of the whole keeps two
    names that differ only there apart.
    """
    whole = f"{exchange}.{name}"
    digest = hashlib.sha256(whole.encode("utf-8")).hexdigest()[:12]
    readable = _UNSAFE.sub("_", whole)[: MAX_QUEUE_NAME_BYTES - 64]
    return f"fastapi_streaming.lease.{readable}.{digest}"


_UNSAFE = re.compile(r"[^a-zA-Z0-9\-_.:]")


class ExclusiveQueueLease:
    """A lease on a derived topic held as an exclusive queue, on a connection of its own.

    The connection is a plain one, not aio-pika's robust kind: a robust connection would
    declare the queue again after reconnecting, possibly while another process owns the topic.
    Here a lost connection is a lost lease (``renew`` says so), and taking it again is a new
    ``acquire``. The connection's heartbeat is about the lease's lifetime, so RabbitMQ deletes
    the queue of an owner that hangs within two lifetimes.
    """

    def __init__(self, connection_url: str, queue: str, name: str, ttl_ms: int) -> None:
        self.name = name
        self.ttl_ms = ttl_ms
        self.queue = queue
        self._url = connection_url
        self._connection: AbstractConnection | None = None

    async def acquire(self) -> bool:
        if await self.renew():
            return True
        await self._drop()
        connection = await aio_pika.connect(
            self._url,
            timeout=max(self.ttl_ms / 1000, 1.0),
            heartbeat=max(math.ceil(self.ttl_ms / 1000), 1),
            client_properties={"connection_name": f"fastapi-streaming lease {self.name}"},
        )
        try:
            channel = await connection.channel()
            await channel.declare_queue(self.queue, exclusive=True)
        except aiormq.exceptions.ChannelLockedResource:
            await connection.close()
            return False  # another process's connection holds it
        except BaseException:
            await connection.close()
            raise
        self._connection = connection
        return True

    async def renew(self) -> bool:
        """Whether the connection holding the queue is still open: while it is, the queue is
        this process's; once it closed, RabbitMQ has deleted the queue."""
        connection = self._connection
        # ``is_closed`` only tells of a close this side asked for; ``connected`` is cleared
        # whichever side closed it, or when it broke.
        return connection is not None and not connection.is_closed and connection.connected.is_set()

    async def release(self) -> None:
        await self._drop()

    async def close(self) -> None:
        await self._drop()

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()  # the broker deletes the exclusive queue with it
