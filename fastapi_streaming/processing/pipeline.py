"""One derived topic at work: source messages in, derived events out to the broker.

A :class:`Pipeline` subscribes to its sources' channel patterns, decodes and validates each
message, and either maps it (a filter/map handler) or feeds the :class:`~.engine.WindowEngine`
(a windowed one), then publishes what comes out on the derived topic's channel with a
deterministic id. It is what the owner of a derived topic runs; :mod:`.runner` decides who that
is. Nothing here stops on bad input: an unusable event is skipped, counted and logged at a
bounded rate, and a failing handler is logged with the key and window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import pydantic_core
from broadcaster import Event as BrokerMessage
from pydantic import ValidationError

from ..brokers.extensions import PatternSubscription
from ..events import Event, UndecodableMessage, decode_message, utc_now
from ..runtime import StreamingRuntime
from ..stopping import cancel_until_done
from ..topics import Topic, TopicRegistry
from .declaration import Derivation, Window
from .engine import Key, Result, WindowEngine
from .engines import key_names, source_topic
from .ids import mapped_event_id, window_event_id
from .partitions import partition_of
from .sources import ChannelReader, channel_pattern
from .stream_feed import Feed, LostLease
from .timing import BadTime, RateLimitedLog, event_time

logger = logging.getLogger("fastapi_streaming.processing")

#: Source messages waiting for the pipeline; beyond that they are dropped and counted.
INBOX_SIZE = 100_000
#: Seconds between the ticks that close idle windows and flush rate-limited updates.
TICK = 0.1
#: Seconds before a pipeline reading Redis Streams tries again after Redis failed.
FEED_RETRY = 1.0


@dataclass
class PipelineStats:
    received: int = 0
    bad_input: int = 0
    bad_time: int = 0
    handler_errors: int = 0
    published: int = 0
    publish_errors: int = 0
    inbox_overflow: int = 0


class Pipeline:
    """Computes one derived topic in this process (while it holds the topic's lease)."""

    def __init__(self, topic: Topic, topics: TopicRegistry, runtime: StreamingRuntime) -> None:
        derivation = topic.derivation
        assert isinstance(derivation, Derivation)
        self.topic = topic
        self.derivation = derivation
        self.topics = topics
        self.runtime = runtime
        self.stats = PipelineStats()
        self.sources = [
            source_topic(topics, address, topic.address) for address in derivation.sources
        ]
        self.readers = [ChannelReader(source, topics) for source in self.sources]
        self.key_names = key_names(topic, derivation)
        self.engine = self._new_engine()
        self._inbox: asyncio.Queue[tuple[int, BrokerMessage]] = asyncio.Queue(INBOX_SIZE)
        self._delivers = [self._deliverer(index) for index in range(len(self.sources))]
        self._tasks: list[asyncio.Task[None]] = []
        #: With a feed (Redis Streams), events made wait here for the next atomic commit.
        self._feed: Feed | None = None
        self._outbox: list[tuple[str, str]] = []
        self._lock = asyncio.Lock()
        self._stream_sources: dict[str, int | None] = {}
        self._last_arrival = time.monotonic()
        self._bad_input = RateLimitedLog(logger)
        self._bad_time = RateLimitedLog(logger)
        self._failures = RateLimitedLog(logger)

    def _new_engine(self) -> WindowEngine | None:
        derivation = self.derivation
        if derivation.window is None:
            return None
        assert derivation.aggregate is not None
        return WindowEngine(
            derivation.window,
            derivation.aggregate,
            allowed_lateness=derivation.allowed_lateness,
            late=derivation.late,
            emit=derivation.emit,
            min_interval=derivation.min_interval,
        )

    # -- running -----------------------------------------------------------------------------

    async def start(self, feed: Feed | None = None) -> None:
        """Subscribe to the sources and compute, from a fresh state (a new owner's), or,
        with a ``feed``, from its last checkpoint.
        """
        self.engine = self._new_engine()
        self._inbox = asyncio.Queue(INBOX_SIZE)
        self._outbox = []
        self._feed = feed
        name = f"fastapi-streaming derive {self.topic.address}"
        if feed is not None:
            await self._restore(feed)
            self._tasks = [
                asyncio.create_task(self._read_feed(feed), name=name),
                asyncio.create_task(self._tick(), name=f"{name} ticks"),
            ]
            return
        backend = self.runtime.broker.backend
        if not isinstance(backend, PatternSubscription):
            raise RuntimeError(
                f"Derived topic {self.topic.address!r} cannot read its sources: the broker "
                f"{self.runtime.broker.url_for_display} cannot subscribe to channel patterns. "
                "Use memory:// or redis:// for now."
            )
        self._tasks = [
            asyncio.create_task(self._work(), name=name),
            asyncio.create_task(self._tick(), name=f"{name} ticks"),
        ]
        for source, deliver in zip(self.sources, self._delivers, strict=True):
            await backend.subscribe_pattern(channel_pattern(source), deliver)

    async def stop(self) -> None:
        backend = self.runtime.broker.backend
        if isinstance(backend, PatternSubscription):
            for source, deliver in zip(self.sources, self._delivers, strict=True):
                with contextlib.suppress(Exception):
                    await backend.unsubscribe_pattern(channel_pattern(source), deliver)
        await cancel_until_done(self._tasks)
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._feed is not None:
            with contextlib.suppress(Exception):
                await self._feed.close()
            self._feed = None

    def source_of(self, channel: str) -> int | None:
        """Which source a channel (a stream) belongs to, if any."""
        if channel not in self._stream_sources:
            found = (i for i, reader in enumerate(self.readers) if reader.read(channel))
            self._stream_sources[channel] = next(found, None)
        return self._stream_sources[channel]

    def partition_of(self, channel: str, partitions: int) -> int | None:
        """Which key partition a source stream's entries belong to (None: not a source's).

        The key is read from the stream's address parameters (declarations check that it
        can be), so all the entries of one stream, and all the streams of one key, go to the
        same partition. A filter/map keeps no state: its streams are split as they are.
        """
        index = self.source_of(channel)
        if index is None:
            return None
        found = self.readers[index].read(channel)
        assert found is not None
        params = found[0]
        if self.derivation.window is None:
            return partition_of((channel,), partitions)
        return partition_of(tuple(params[name] for name in self.key_names), partitions)

    async def _read_feed(self, feed: Feed) -> None:
        """Process each batch of source entries, then commit its output and checkpoint.

        When Redis fails (a read, a commit), what was processed since the last commit is
        thrown away and the pipeline starts again from the last checkpoint once Redis answers:
        nothing is lost, and nothing is emitted twice.
        """
        while True:
            try:
                async for batch, positions in feed.batches():
                    async with self._lock:
                        await self._process_batch(batch)
                        feed.advance(positions)
                        await self._commit(feed)
            except LostLease as exc:
                logger.warning("Derived topic %s stopped: %s", self.topic.address, exc)
                return
            except Exception as exc:
                logger.warning(
                    "Derived topic %s lost its sources (%r); resuming from its last checkpoint",
                    self.topic.address,
                    exc,
                )
                await asyncio.sleep(FEED_RETRY)
                with contextlib.suppress(Exception):
                    async with self._lock:
                        await self._restore(feed)

    async def _process_batch(self, batch: list[tuple[str, str]]) -> None:
        for channel, text in batch:
            index = self.source_of(channel)
            if index is None:
                continue
            try:
                await self.process(index, BrokerMessage(channel=channel, message=text))
            except Exception:
                logger.exception("Derived topic %s failed on an event", self.topic.address)

    async def _restore(self, feed: Feed) -> None:
        """Go back to the last committed checkpoint (at start, and after a failure)."""
        checkpoint = await feed.load()
        self.engine = self._new_engine()
        self._outbox = []
        if checkpoint.engine is not None and self.engine is not None:
            self.engine.restore(checkpoint.engine)

    async def _commit(self, feed: Feed) -> None:
        outputs, self._outbox = self._outbox, []
        state = self.engine.snapshot() if self.engine is not None else None
        await feed.commit(state, outputs)
        self.stats.published += len(outputs)

    def _deliverer(self, index: int) -> Any:
        def deliver(message: BrokerMessage) -> None:
            try:
                self._inbox.put_nowait((index, message))
            except asyncio.QueueFull:
                self.stats.inbox_overflow += 1
                self._failures.warning(
                    "Derived topic %s is behind: dropped a source event (inbox full)",
                    self.topic.address,
                )

        return deliver

    async def _work(self) -> None:
        while True:
            index, message = await self._inbox.get()
            try:
                await self.process(index, message)
            except Exception:
                logger.exception("Derived topic %s failed on an event", self.topic.address)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            if self.engine is None:
                continue
            async with self._lock:
                await self._publish_results(self._on_tick(self.engine))
                feed = self._feed
                if feed is not None and self._outbox:
                    try:
                        await self._commit(feed)
                    except LostLease as exc:
                        logger.warning("Derived topic %s stopped: %s", self.topic.address, exc)
                        return
                    except Exception as exc:
                        logger.warning(
                            "Derived topic %s could not commit (%r); back to its checkpoint",
                            self.topic.address,
                            exc,
                        )
                        with contextlib.suppress(Exception):
                            await self._restore(feed)

    def _on_tick(self, engine: WindowEngine) -> list[Result]:
        derivation = self.derivation
        out = engine.flush_updates(time.monotonic()) if derivation.emit == "updates" else []
        if derivation.time is None:
            out += engine.advance(time.time() - derivation.allowed_lateness)
        elif derivation.idle is not None and engine.max_time != float("-inf"):
            quiet = time.monotonic() - self._last_arrival
            if quiet >= derivation.idle:
                out += engine.advance(engine.max_time + quiet - derivation.allowed_lateness)
        return out

    # -- one event ---------------------------------------------------------------------------

    async def process(self, index: int, message: BrokerMessage) -> None:
        """Handle one source message (the pipeline's work, exposed for tests and benchmarks)."""
        source = self.sources[index]
        found = self.readers[index].read(message.channel)
        if found is None:
            return  # a channel of another topic that the pattern matches too
        params, address = found
        self.stats.received += 1
        self._last_arrival = time.monotonic()
        try:
            event = decode_message(message.message, topic=address, channel=message.channel)
        except UndecodableMessage as exc:
            self._skip(f"{exc}")
            return
        if self.engine is None:
            await self._map(event, params)
            return
        try:
            value = source.payload_adapter.validate_python(event.data)
        except ValidationError as exc:
            self._skip(f"it does not match the payload of {source.address}: {exc.errors()}")
            return
        if self.derivation.time is None:
            at = time.time()
        else:
            try:
                at = event_time(value, self.derivation.time)
            except BadTime as exc:
                self.stats.bad_time += 1
                self._bad_time.warning(
                    "Derived topic %s skipped an event of %s without a usable time: %s",
                    self.topic.address,
                    address,
                    exc,
                )
                return
        try:
            key = self._key(params, value)
        except (KeyError, AttributeError, TypeError) as exc:
            self._skip(f"it has no key field {self.derivation.key!r} ({exc!r})")
            return
        await self._publish_results(self.engine.add(key, at, value, now=time.monotonic()))

    def _key(self, params: dict[str, Any], value: Any) -> Key:
        parts: list[Hashable] = []
        for name in self.key_names:
            if name in params:  # a key field may be a parameter of the source's address
                parts.append(params[name])
            else:
                parts.append(value[name] if isinstance(value, dict) else getattr(value, name))
        return tuple(parts)

    def _skip(self, why: str) -> None:
        self.stats.bad_input += 1
        self._bad_input.warning("Derived topic %s skipped an event: %s", self.topic.address, why)

    async def _map(self, event: Event, params: dict[str, Any]) -> None:
        shape = self.derivation.shape
        arguments = {name: params[name] for name in shape.key_params}
        if shape.event_param is not None:
            assert shape.event_adapter is not None
            try:
                arguments[shape.event_param] = shape.event_adapter.validate_python(event.data)
            except ValidationError as exc:
                self._skip(f"it does not match the handler's event type: {exc.errors()}")
                return
        output = await self._call(arguments, f"event {event.id}")
        if output is None:
            return
        own = {name: params[name] for name in self.topic.parameters}
        await self._publish(own, mapped_event_id(self.topic.address, event.id), output)

    async def _publish_results(self, results: list[Result]) -> None:
        shape = self.derivation.shape
        for result in results:
            key = dict(zip(self.key_names, result.key, strict=True))
            window = Window(
                start=result.start,
                end=result.end,
                value=result.value,
                key=key,
                events=result.events,
                final=result.final,
                revision=result.revision,
            )
            arguments: dict[str, Any] = {name: key[name] for name in shape.key_params}
            assert shape.window_param is not None
            arguments[shape.window_param] = window
            where = f"key {key} window [{result.start}, {result.end})"
            output = await self._call(arguments, where)
            if output is None:
                continue
            own = {name: key[name] for name in self.topic.parameters}
            event_id = window_event_id(
                self.topic.address_for(own),
                result.key,
                result.start,
                result.end,
                result.revision,
                result.sequence,
            )
            await self._publish(own, event_id, output)

    async def _call(self, arguments: dict[str, Any], where: str) -> Any:
        shape = self.derivation.shape
        try:
            output = shape.call(**arguments)
            if shape.is_async:
                output = await output
        except Exception:
            self.stats.handler_errors += 1
            logger.exception(
                "The handler of derived topic %s failed on %s; the pipeline goes on",
                self.topic.address,
                where,
            )
            return None
        return output

    async def _publish(self, params: dict[str, Any], event_id: str, output: Any) -> None:
        address = self.topic.address_for(params)
        try:
            data = pydantic_core.to_json(output)
            message = Event(id=event_id, topic=address, time=utc_now(), data=None)
            if self._feed is not None:
                self._outbox.append((self.topic.channel_for(params), message.to_message(data)))
                return
            await self.runtime.broker.publish(
                self.topic.channel_for(params), message.to_message(data)
            )
        except Exception as exc:
            self.stats.publish_errors += 1
            self._failures.warning("Derived topic %s could not publish an event: %r", address, exc)
            return
        self.stats.published += 1
