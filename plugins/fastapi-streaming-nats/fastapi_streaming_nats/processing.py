"""Derived topics on NATS: an owner elected through a KV bucket, checkpoints in another.

The backend hosts derived topics
(:class:`~fastapi_streaming.processing.hosting.DerivedTopicBackend`) with two JetStream
key-value buckets named after the stream (``<stream>_LEASES`` and ``<stream>_CHECKPOINTS``; on
core NATS ``<prefix>_LEASES``, or ``FASTAPI_STREAMING_LEASES`` without a prefix):

- :class:`KVLease`: the lease is a key of a bucket whose entries expire ``ttl`` after their last
  write. ``create`` takes it only when it is absent (expired, or released), and the owner renews
  it with an update that expects the revision it wrote last, so nobody else can extend it.
- :class:`JetStreamFeed` (JetStream mode only): the owner reads its sources from the stream, in
  stream order, through an ordered consumer (ephemeral, pushed, restarted by the client after a
  gap) that starts after the stream sequence of the last checkpoint. After each batch it
  publishes the derived events, each with its deterministic id as ``Nats-Msg-Id``, then writes
  the checkpoint (the engine's state and the stream sequence reached) with an update that
  expects the checkpoint's revision.

A new owner first writes the checkpoint it loaded back (a claim): any commit of a deposed owner
still running then expects a stale revision and is refused, so the checkpoints form one chain.
An owner that dies between publishing and checkpointing has its last batch's events published
again by the next owner, with the same ids: JetStream's duplicate window (two minutes unless the
stream says otherwise) drops them from the stream, so the stream stores each derived event once
if the takeover comes within that window. Live subscribers, which read core NATS, may receive
such an event twice, with the same id.

On core NATS (no ``jetstream``) there is no feed: the owner subscribes to its sources' subjects
live (wildcards), and a takeover loses what the old owner had folded into its open windows. The
lease still needs JetStream on the server (the KV bucket).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pickle
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from hashlib import blake2b
from typing import Any

import nats
import nats.errors
import nats.js.errors
from fastapi_streaming.processing.stream_feed import BATCH, Checkpoint, LostLease
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy, KeyValueConfig
from nats.js.kv import KeyValue

from fastapi_streaming_nats.options import DEFAULT_STREAM, NATSOptions

logger = logging.getLogger("fastapi_streaming.nats")

#: Source messages read ahead of the pipeline.
QUEUE = 20 * BATCH
#: Seconds an ephemeral consumer outlives its owner (a dead one's consumer is removed then).
CONSUMER_IDLE_S = 30.0
#: The one position of a checkpoint: the stream sequence of the last message processed.
POSITION = "stream"
#: Claims a new owner retries while a deposed owner is still committing.
CLAIM_ATTEMPTS = 50

_KEY_UNSAFE = re.compile(r"[^-_A-Za-z0-9]")


def kv_key(name: str) -> str:
    """A KV key for a derived topic's channel template (``clicks.{page}`` has braces, which KV
    keys cannot): the readable part, and a hash that keeps distinct names distinct."""
    digest = blake2b(name.encode(), digest_size=8).hexdigest()
    return f"{_KEY_UNSAFE.sub('_', name)[:120]}.{digest}"


def bucket_name(options: NATSOptions, kind: str) -> str:
    """``<stream>_<kind>``; on core NATS ``<prefix>_<kind>`` (dots made underscores)."""
    base = options.stream or options.prefix.replace(".", "_") or DEFAULT_STREAM
    return f"{base}_{kind}"


def filter_subject(options: NATSOptions, patterns: Sequence[str]) -> str:
    """One NATS subject that matches at least every channel of the glob ``patterns``.

    A glob's ``*`` may span dots (``clicks.*`` matches ``clicks.a.b``), which a NATS ``*``
    cannot: the subject is the patterns' common literal tokens followed by ``>``, and the
    caller keeps what the globs match. (NATS 2.9 consumers take a single filter subject.)
    """
    token_lists = [options.subject_tokens(pattern) for pattern in patterns]
    fixed = [_literal_tokens(tokens) for tokens in token_lists]
    literal = [tokens for tokens in token_lists if _literal_tokens(tokens) == tokens]
    if literal and all(tokens == literal[0] for tokens in token_lists):
        return ".".join(literal[0])  # one subject, without wildcards
    common: list[str] = []
    for column in zip(*fixed, strict=False):
        if len(set(column)) != 1:
            break
        common.append(column[0])
    if any(len(tokens) == len(common) for tokens in literal):
        common = common[:-1]  # ``a.b.>`` does not match ``a.b`` itself
    return ".".join([*common, ">"])


def _literal_tokens(tokens: list[str]) -> list[str]:
    literal = []
    for token in tokens:
        if any(char in token for char in "*?["):
            break
        literal.append(token)
    return literal


async def _connect(options: NATSOptions, role: str) -> Client:
    return await nats.connect(
        servers=[options.server],
        name=f"{options.name} {role}",
        max_reconnect_attempts=options.reconnect_attempts,
        reconnect_time_wait=options.reconnect_wait,
    )


async def _bucket(js: JetStreamContext, name: str, ttl: float | None = None) -> KeyValue:
    """The KV bucket ``name``, created when missing (an existing one is used as it is)."""
    try:
        return await js.key_value(name)
    except nats.js.errors.BucketNotFoundError:
        pass
    except nats.errors.NoRespondersError:
        raise _no_jetstream() from None
    try:
        return await js.create_key_value(config=KeyValueConfig(bucket=name, history=1, ttl=ttl))
    except nats.js.errors.BadRequestError:
        return await js.key_value(name)  # another process created it first


def _no_jetstream() -> RuntimeError:
    return RuntimeError(
        "Derived topics on NATS elect their owner in a JetStream KV bucket, and this NATS "
        "server has no JetStream: start it with JetStream enabled (nats-server -js)."
    )


class KVLease:
    """The right to compute one derived topic: a key of a KV bucket whose entries expire."""

    def __init__(self, options: NATSOptions, name: str, ttl_ms: int) -> None:
        self.name = name
        self.ttl_ms = ttl_ms
        self.options = options
        self.key = kv_key(name)
        self.token = f"{os.getpid()}-{uuid.uuid4().hex}".encode()
        self._revision = 0
        self._nc: Client | None = None
        self._kv: KeyValue | None = None

    async def acquire(self) -> bool:
        kv = await self._bucket()
        try:
            self._revision = await kv.create(self.key, self.token)
            return True
        except nats.js.errors.KeyWrongLastSequenceError:
            pass
        try:
            entry = await kv.get(self.key)
        except nats.js.errors.KeyNotFoundError:
            return False  # expired meanwhile: the next attempt takes it
        if entry.value != self.token or entry.revision is None:
            return False
        self._revision = entry.revision
        return True

    async def renew(self) -> bool:
        kv = await self._bucket()
        try:
            self._revision = await kv.update(self.key, self.token, last=self._revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            return False  # expired, and perhaps taken by another process
        return True

    async def release(self) -> None:
        kv = await self._bucket()
        # Only while it is still this process's: a stale revision makes the server refuse it.
        await kv.delete(self.key, last=self._revision)

    async def close(self) -> None:
        nc, self._nc, self._kv = self._nc, None, None
        if nc is not None:
            await nc.close()

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            if self._nc is None:
                self._nc = await _connect(self.options, "lease")
            ttl = self.ttl_ms / 1000
            self._kv = await _bucket(self._nc.jetstream(), bucket_name(self.options, "LEASES"), ttl)
        return self._kv


class JetStreamFeed:
    """Feeds a pipeline from the JetStream stream and commits its output with checkpoints."""

    def __init__(
        self,
        options: NATSOptions,
        lease: KVLease,
        patterns: Sequence[str],
        accepts: Callable[[str], bool],
    ) -> None:
        assert options.stream is not None
        self.options = options
        self.stream = options.stream
        self.lease = lease
        self.subject = filter_subject(options, patterns)
        self.accepts = accepts
        self.key = kv_key(lease.name)
        self.checkpoint = Checkpoint(origin_ms=0)
        self._revision = 0
        self._nc: Client | None = None
        self._kv: KeyValue | None = None
        self._sub: JetStreamContext.PushSubscription | None = None
        self._queue: asyncio.Queue[Msg] = asyncio.Queue(QUEUE)

    async def load(self) -> Checkpoint:
        """The last checkpoint (or a new one starting now), claimed, with a consumer after it."""
        js, kv = await self._connected()
        for _ in range(CLAIM_ATTEMPTS):
            entry = await self._entry(js, kv)
            if entry.value is None:
                raise LostLease(f"the checkpoint of {self.lease.name!r} was deleted")
            try:
                # The claim: a deposed owner's next commit expects the old revision and fails.
                self._revision = await kv.update(self.key, entry.value, last=entry.revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                await asyncio.sleep(0.05)  # a deposed owner committed just now: load again
                continue
            self.checkpoint = pickle.loads(entry.value)  # written by this library's owners
            await self._consume(js, int(self.checkpoint.positions[POSITION]) + 1)
            return self.checkpoint
        raise LostLease(f"the checkpoint of {self.lease.name!r} keeps changing under this owner")

    async def batches(self) -> AsyncIterator[tuple[list[tuple[str, str]], dict[str, str]]]:
        """Batches of (channel, message) in stream order, each with the sequence after it."""
        while True:
            messages = [await self._queue.get()]
            while len(messages) < BATCH and not self._queue.empty():
                messages.append(self._queue.get_nowait())
            batch: list[tuple[str, str]] = []
            for msg in messages:
                channel = self.options.channel_of(msg.subject)
                if channel is None or not self.accepts(channel):
                    continue
                try:
                    batch.append((channel, msg.data.decode()))
                except UnicodeDecodeError:
                    logger.warning("Skipped a message of %r that is not UTF-8", msg.subject)
            yield batch, {POSITION: str(messages[-1].metadata.sequence.stream)}

    def advance(self, positions: dict[str, str]) -> None:
        self.checkpoint.positions.update(positions)

    async def commit(self, state: dict[str, Any] | None, outputs: list[tuple[str, str]]) -> None:
        """Publish ``outputs`` with their ids as ``Nats-Msg-Id``, then save the checkpoint if it
        is still this owner's (else :class:`LostLease`)."""
        js, kv = await self._connected()
        await asyncio.gather(
            *(
                js.publish(
                    self.options.subject(channel),
                    message.encode(),
                    stream=self.stream,
                    headers={"Nats-Msg-Id": _event_id(message)},
                )
                for channel, message in outputs
            )
        )
        self.checkpoint.engine = state
        blob = pickle.dumps(self.checkpoint)
        limit = self._nc.max_payload if self._nc is not None else len(blob)
        if len(blob) > limit:
            raise ValueError(
                f"the checkpoint of {self.lease.name!r} is {len(blob)} bytes, above the NATS "
                f"server's max_payload of {limit}: raise max_payload, or keep fewer keys or "
                "open windows"
            )
        try:
            self._revision = await kv.update(self.key, blob, last=self._revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            raise LostLease(f"another process owns {self.lease.name!r} now") from None

    async def close(self) -> None:
        nc, self._nc, self._kv, self._sub = self._nc, None, None, None
        if nc is not None:
            await nc.close()

    async def _connected(self) -> tuple[JetStreamContext, KeyValue]:
        if self._nc is None:
            self._nc = await _connect(self.options, "derive")
        js = self._nc.jetstream()
        if self._kv is None:
            self._kv = await _bucket(js, bucket_name(self.options, "CHECKPOINTS"))
        return js, self._kv

    async def _entry(self, js: JetStreamContext, kv: KeyValue) -> KeyValue.Entry:
        try:
            return await kv.get(self.key)
        except nats.js.errors.KeyNotFoundError:
            pass
        # The first owner starts after what the stream holds now, and saves that at once: an
        # owner that hands over before its first commit must not move the start.
        info = await js.stream_info(self.stream)
        first = Checkpoint(
            origin_ms=int(time.time() * 1000), positions={POSITION: str(info.state.last_seq)}
        )
        try:
            await kv.create(self.key, pickle.dumps(first))
        except nats.js.errors.KeyWrongLastSequenceError:
            pass  # another owner saved one first: that one counts
        return await kv.get(self.key)

    async def _consume(self, js: JetStreamContext, start: int) -> None:
        """Read the stream from ``start`` on through an ordered consumer: the server pushes the
        messages in stream order, and the client starts it again after a gap it notices."""
        if self._sub is not None:
            await self._sub.unsubscribe()
        queue: asyncio.Queue[Msg] = asyncio.Queue(QUEUE)
        self._queue = queue

        async def received(msg: Msg) -> None:
            await queue.put(msg)  # a full queue holds the subscription back: flow control

        self._sub = await js.subscribe(
            self.subject,
            stream=self.stream,
            cb=received,
            ordered_consumer=True,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=start,
                inactive_threshold=CONSUMER_IDLE_S,
            ),
        )
        info = await js.stream_info(self.stream)
        if info.state.first_seq > start:
            logger.warning(
                "Derived topic %s resumes at stream sequence %d, but %s keeps messages from %d "
                "on only: what came in between is lost (the stream's max_age or limits)",
                self.lease.name,
                start,
                self.stream,
                info.state.first_seq,
            )


def _event_id(message: str) -> str:
    """The id of an encoded derived event (the CloudEvents ``id``), its deduplication key."""
    return str(json.loads(message)["id"])
