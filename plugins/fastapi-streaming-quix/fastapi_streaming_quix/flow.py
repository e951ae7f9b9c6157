"""One derived topic as a Quix Streams dataframe: the same declaration, Quix's machinery.

Source messages are read from the concrete Kafka topics of each source (one per address, as
fastapi-streaming's ``kafka://`` backend writes them), decoded as the embedded engine decodes
them, and checked the same way: an event without a usable time, with a payload that does not
validate or without its key field is skipped, counted and logged at a bounded rate. A windowed
topic is then grouped by its key (a repartition topic), windowed by Quix (its state stores and
changelog topics hold the accumulators, so a new owner restores them) and aggregated with the
declaration's own :class:`~fastapi_streaming.processing.Aggregate`. Each result goes through
the derive handler and out to the derived topic's channel, with the id the embedded engine
would give it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import pickle
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import pydantic_core
from fastapi_streaming.events import Event, UndecodableMessage, decode_message, utc_now
from fastapi_streaming.processing import CountWindow, DerivedTopic, Hopping, Session, Tumbling
from fastapi_streaming.processing import Window as WindowResult
from fastapi_streaming.processing.ids import mapped_event_id, window_event_id
from fastapi_streaming.processing.sources import ChannelReader
from fastapi_streaming.processing.timing import BadTime, RateLimitedLog, event_time
from fastapi_streaming.topics import TopicRegistry
from pydantic import ValidationError
from quixstreams import Application
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.models import Deserializer, SerializationContext, Serializer
from quixstreams.models.topics import Topic as QuixTopic

logger = logging.getLogger("fastapi_streaming_quix")


@dataclass
class FlowStats:
    """What a flow skipped or failed on, as the embedded pipeline counts it."""

    received: int = 0
    bad_input: int = 0
    bad_time: int = 0
    late_dropped: int = 0
    reducer_errors: int = 0
    handler_errors: int = 0
    published: int = 0


class SourceDeserializer(Deserializer):
    """A message of one of a source's concrete topics: its address parameters and data."""

    def __init__(self, reader: ChannelReader, index: int) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.reader = reader
        self.index = index

    def __call__(self, value: bytes, ctx: SerializationContext) -> dict[str, Any]:
        found = self.reader.read(ctx.topic)
        if found is None:
            return {"skip": f"{ctx.topic!r} is not a channel of {self.reader.topic.address}"}
        params, address = found
        try:
            event = decode_message(value, topic=address, channel=ctx.topic)
        except UndecodableMessage as exc:
            return {"skip": str(exc)}
        return {
            "source": self.index,
            "params": params,
            "address": address,
            "id": event.id,
            "data": event.data,
        }


class EnvelopeSerializer(Serializer):
    """Writes a derived event's CloudEvents text, as fastapi-streaming's backend would."""

    def __call__(self, value: dict[str, Any], ctx: SerializationContext) -> bytes:
        message: str = value["message"]
        return message.encode()


class Flow:
    """Builds the dataframe of one derived topic on an :class:`Application`."""

    def __init__(
        self,
        derived: DerivedTopic,
        topics: TopicRegistry,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.derived = derived
        self.derivation = derived.derivation
        self.readers = [ChannelReader(source, topics) for source in derived.sources]
        self.loop = loop
        self.stats = FlowStats()
        self._bad_input = RateLimitedLog(logger)
        self._bad_time = RateLimitedLog(logger)
        self._late = RateLimitedLog(logger)
        self._outputs: dict[str, QuixTopic] = {}

    def build(self, app: Application, source_topics: dict[int, list[str]]) -> None:
        """Declare the dataframe on ``app``, reading the concrete topics of each source."""
        self._app = app
        frames = [
            app.dataframe(
                app.topic(name, value_deserializer=SourceDeserializer(self.readers[index], index))
            )
            for index, names in sorted(source_topics.items())
            for name in sorted(names)
        ]
        sdf = frames[0]
        for other in frames[1:]:
            sdf = sdf.concat(other)
        if self.derivation.window is None:
            sdf = sdf.apply(self._map)
        else:
            sdf = self._windowed(sdf)
        sdf = sdf.filter(lambda value: value is not None)
        sdf.to_topic(self._output_topic)

    # -- stateless -----------------------------------------------------------------------

    def _map(self, row: dict[str, Any]) -> dict[str, Any] | None:
        self.stats.received += 1
        if "skip" in row:
            self._skip(row["skip"])
            return None
        shape = self.derivation.shape
        params = row["params"]
        arguments = {name: params[name] for name in shape.key_params}
        if shape.event_param is not None:
            assert shape.event_adapter is not None
            try:
                arguments[shape.event_param] = shape.event_adapter.validate_python(row["data"])
            except ValidationError as exc:
                self._skip(f"it does not match the handler's event type: {exc.errors()}")
                return None
        output = self._call(arguments, f"event {row['id']}")
        if output is None:
            return None
        own = {name: params[name] for name in self.derived.topic.parameters}
        return self._envelope(own, mapped_event_id(self.derived.address, row["id"]), output)

    # -- windows ---------------------------------------------------------------------------

    def _windowed(self, sdf: StreamingDataFrame) -> StreamingDataFrame:
        derivation = self.derivation
        sdf = sdf.apply(self._keyed).filter(lambda value: value is not None)
        if derivation.time is not None:
            sdf = sdf.set_timestamp(lambda value, key, timestamp, headers: value["ts"])
        sdf = sdf.group_by(lambda value: json.dumps(value["key"]), name="key")
        window = derivation.window
        grace = round(derivation.allowed_lateness * 1000)
        if isinstance(window, Tumbling):
            defined: Any = sdf.tumbling_window(
                _ms(window.size), grace_ms=grace, on_late=self._on_late
            )
        elif isinstance(window, Hopping):
            defined = sdf.hopping_window(
                _ms(window.size), _ms(window.every), grace_ms=grace, on_late=self._on_late
            )
        elif isinstance(window, Session):
            defined = sdf.session_window(_ms(window.gap), grace_ms=grace, on_late=self._on_late)
        else:
            assert isinstance(window, CountWindow)
            defined = sdf.tumbling_count_window(window.size)
        reduced = defined.reduce(reducer=self._fold, initializer=self._first)
        emitted = reduced.final() if derivation.emit == "final" else reduced.current()
        result: StreamingDataFrame = emitted.apply(self._result, metadata=True)
        return result

    def _keyed(self, row: dict[str, Any]) -> dict[str, Any] | None:
        """The row a window folds in: its key, event time and data; None to skip it."""
        self.stats.received += 1
        if "skip" in row:
            self._skip(row["skip"])
            return None
        source = self.derived.sources[row["source"]]
        try:
            value = source.payload_adapter.validate_python(row["data"])
        except ValidationError as exc:
            self._skip(f"it does not match the payload of {source.address}: {exc.errors()}")
            return None
        stamp = None
        if self.derivation.time is not None:
            try:
                stamp = round(event_time(value, self.derivation.time) * 1000)
            except BadTime as exc:
                self.stats.bad_time += 1
                self._bad_time.warning(
                    "Derived topic %s skipped an event of %s without a usable time: %s",
                    self.derived.address,
                    row["address"],
                    exc,
                )
                return None
        try:
            key = self._key(row["params"], value)
        except (KeyError, AttributeError, TypeError) as exc:
            self._skip(f"it has no key field {self.derivation.key!r} ({exc!r})")
            return None
        return {"key": list(key), "ts": stamp, "source": row["source"], "data": row["data"]}

    def _key(self, params: dict[str, Any], value: Any) -> tuple[Hashable, ...]:
        field = self.derivation.key
        parts: list[Hashable] = []
        for name in self.derived.key_names:
            if name in params and name != field:
                parts.append(params[name])
            else:
                parts.append(value[name] if isinstance(value, dict) else getattr(value, name))
        return tuple(parts)

    def _event(self, row: dict[str, Any]) -> Any:
        return self.derived.sources[row["source"]].payload_adapter.validate_python(row["data"])

    def _first(self, row: dict[str, Any]) -> dict[str, Any]:
        aggregate = self.derivation.aggregate
        assert aggregate is not None
        return self._fold({"acc": _pack(aggregate.initial()), "n": 0}, row)

    def _fold(self, state: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
        """Fold one event into a window's state (the accumulator, pickled: Quix keeps JSON)."""
        aggregate = self.derivation.aggregate
        assert aggregate is not None
        try:
            accumulator = aggregate.add(_unpack(state["acc"]), self._event(row))
        except Exception:
            self.stats.reducer_errors += 1
            logger.exception(
                "The reducer of %s failed on an event of key %r; the event is skipped",
                self.derived.address,
                row["key"],
            )
            return state
        return {"acc": _pack(accumulator), "n": state["n"] + 1}

    def _on_late(
        self,
        value: Any,
        key: Any,
        timestamp_ms: int,
        late_by_ms: int,
        start: int,
        end: int,
        store_name: str,
        topic: str,
        partition: int,
        offset: int,
    ) -> bool:
        self.stats.late_dropped += 1
        self._late.warning(
            "Derived topic %s dropped a late event of key %s (%d ms late)",
            self.derived.address,
            key,
            late_by_ms,
        )
        return False  # logged here, at a bounded rate

    def _result(
        self, row: dict[str, Any], key: Any, timestamp: int, headers: Any
    ) -> dict[str, Any] | None:
        aggregate = self.derivation.aggregate
        assert aggregate is not None
        state = row["value"]
        parts = tuple(json.loads(key))
        named = dict(zip(self.derived.key_names, parts, strict=True))
        start, end = row["start"] / 1000, row["end"] / 1000
        try:
            value = aggregate.result(_unpack(state["acc"]))
        except Exception:
            self.stats.reducer_errors += 1
            logger.exception("The aggregate's result failed for key %r", named)
            value = None
        final = self.derivation.emit == "final"
        revision = 0 if final else state["n"] - 1
        window = WindowResult(
            start=start,
            end=end,
            value=value,
            key=named,
            events=state["n"],
            final=final,
            revision=revision,
        )
        shape = self.derivation.shape
        arguments: dict[str, Any] = {name: named[name] for name in shape.key_params}
        assert shape.window_param is not None
        arguments[shape.window_param] = window
        output = self._call(arguments, f"key {named} window [{start}, {end})")
        if output is None:
            return None
        topic = self.derived.topic
        own = {name: named[name] for name in topic.parameters}
        event_id = window_event_id(topic.address_for(own), parts, start, end, revision)
        return self._envelope(own, event_id, output)

    # -- output ----------------------------------------------------------------------------

    def _call(self, arguments: dict[str, Any], where: str) -> Any:
        shape = self.derivation.shape
        try:
            output = shape.call(**arguments)
            if shape.is_async:  # on the API's event loop, where async handlers belong
                output = asyncio.run_coroutine_threadsafe(output, self.loop).result()
        except Exception:
            self.stats.handler_errors += 1
            logger.exception(
                "The handler of derived topic %s failed on %s; the flow goes on",
                self.derived.address,
                where,
            )
            return None
        return output

    def _envelope(self, own: dict[str, Any], event_id: str, output: Any) -> dict[str, Any]:
        topic = self.derived.topic
        message = Event(id=event_id, topic=topic.address_for(own), time=utc_now(), data=None)
        self.stats.published += 1
        return {
            "channel": topic.channel_for(own),
            "message": message.to_message(pydantic_core.to_json(output)),
        }

    def _output_topic(self, value: dict[str, Any], key: Any, timestamp: int, headers: Any) -> Any:
        channel: str = value["channel"]
        found = self._outputs.get(channel)
        if found is None:
            found = self._outputs[channel] = self._app.topic(
                channel, value_serializer=EnvelopeSerializer(), key_serializer="str"
            )
        return found

    def _skip(self, why: str) -> None:
        self.stats.bad_input += 1
        self._bad_input.warning("Derived topic %s skipped an event: %s", self.derived.address, why)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _pack(accumulator: Any) -> str:
    # Written and read by this engine only, like the embedded engine's checkpoints.
    return base64.b64encode(pickle.dumps(accumulator)).decode()


def _unpack(packed: str) -> Any:
    return pickle.loads(base64.b64decode(packed))
