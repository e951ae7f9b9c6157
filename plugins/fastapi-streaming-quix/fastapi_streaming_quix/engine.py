"""The ``quix`` processing engine: derived topics computed by Quix Streams on Kafka.

Each derived topic runs as a Quix Streams :class:`~quixstreams.Application` in a thread of the
API's process, in a consumer group named after the derived topic's channel. Every process of a
deployment runs one; Kafka's group protocol gives each source partition to exactly one of them,
Quix keeps the windows' state in RocksDB backed by changelog topics, and commits source offsets
and state together: a process that leaves or dies hands its partitions over, and the new owner
restores the state from the changelog and reads on from the committed offsets.

fastapi-streaming writes each concrete address to a Kafka topic of its own (``clicks.home``,
``clicks.docs``...), and Quix Streams subscribes to topics by name, not by pattern. So the
engine lists the broker's topics, starts the application on those that belong to a source, and
looks again every ``rescan`` seconds: when a new one appears the application is restarted on
the larger set (its state and offsets carry over, as in a handover), and reads the new topic
from its beginning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
import tempfile
import threading
from collections.abc import Collection
from typing import Any
from urllib.parse import urlsplit

from fastapi_streaming.processing import (
    CountWindow,
    DerivedTopic,
    EngineContext,
    Session,
    UnsupportedDeclarationError,
)
from fastapi_streaming.processing.sources import ChannelReader
from fastapi_streaming.topics import TopicRegistry
from quixstreams import Application
from quixstreams.models.topics import TopicAdmin

from .flow import Flow
from .topics import RetentionDefaultingTopicManager

logger = logging.getLogger("fastapi_streaming_quix")

#: Seconds between looks for new source topics.
RESCAN = 1.0
#: Seconds between commits of offsets and state (Quix's default is 5).
COMMIT_INTERVAL = 1.0
#: How soon the group notices a member that died (librdkafka's default session is 45 s), so
#: another process takes its partitions over within seconds.
CONSUMER_CONFIG = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}


def broker_address(url: str) -> str:
    """``kafka://host:port`` as Kafka clients want it (``host:port``)."""
    parts = urlsplit(url)
    if parts.scheme != "kafka" or not parts.netloc:
        raise UnsupportedDeclarationError(
            f"The quix processing engine computes derived topics on Kafka; the broker is "
            f"{parts.scheme}://. Use broker='kafka://host:port', or processing_engine="
            "'embedded'."
        )
    return parts.netloc.rpartition("@")[2]


def check(derived: DerivedTopic) -> None:
    """Refuse, with what to change, what Quix Streams cannot compute as declared."""
    derivation = derived.derivation
    where = f"Derived topic {derived.address!r} on the quix engine"
    if derivation.late == "update":
        raise UnsupportedDeclarationError(
            f"{where}: Quix Streams drops events for closed windows and cannot update them; "
            "use late='drop' with allowed_lateness=..., or processing_engine='embedded'."
        )
    if derivation.emit == "updates" and derivation.min_interval > 0:
        raise UnsupportedDeclarationError(
            f"{where}: Quix Streams emits every update (no minimum interval); "
            "leave min_interval=0, or use processing_engine='embedded'."
        )
    if isinstance(derivation.window, Session):
        raise UnsupportedDeclarationError(
            f"{where}: Quix Streams merges session windows, which needs an aggregate that can "
            "merge two accumulators, and fastapi-streaming's aggregates cannot; use a "
            "tumbling or hopping window, or processing_engine='embedded'."
        )
    if isinstance(derivation.window, CountWindow) and derivation.emit != "final":
        raise UnsupportedDeclarationError(f"{where}: count windows emit final results only.")


def group_name(derived: DerivedTopic) -> str:
    """The consumer group of a derived topic: the same in every process of a deployment."""
    channel = derived.topic.channel or derived.address
    return "fastapi-streaming." + re.sub(r"[^A-Za-z0-9._-]", "_", channel)


class QuixEngine:
    """Runs each derived topic of an API as a Quix Streams application."""

    def __init__(self, context: EngineContext, *, rescan: float = RESCAN) -> None:
        self.address = broker_address(context.broker_url)
        for derived in context.derived:
            check(derived)
        self.runners = [
            FlowRunner(derived, context.topics, self.address, rescan) for derived in context.derived
        ]

    @property
    def owned(self) -> Collection[str]:
        return {runner.derived.address for runner in self.runners if runner.assigned}

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for runner in self.runners:
            runner.start(loop)

    async def stop(self) -> None:
        for runner in self.runners:
            await asyncio.to_thread(runner.stop)


class _Application(Application):
    """An application that runs in a thread of a process that handles its own signals, and
    tells whether it holds partitions."""

    assigned = False

    def _setup_signal_handlers(self) -> None:
        pass  # the API's process (uvicorn) owns SIGINT and SIGTERM

    def _on_assign(self, consumer: Any, topic_partitions: Any) -> None:
        super()._on_assign(consumer, topic_partitions)
        if topic_partitions:
            self.assigned = True

    def _on_revoke(self, consumer: Any, topic_partitions: Any) -> None:
        self.assigned = False
        super()._on_revoke(consumer, topic_partitions)

    def _on_lost(self, consumer: Any, topic_partitions: Any) -> None:
        self.assigned = False
        super()._on_lost(consumer, topic_partitions)


class FlowRunner:
    """One derived topic's application, restarted when its sources gain a topic."""

    def __init__(
        self, derived: DerivedTopic, topics: TopicRegistry, address: str, rescan: float
    ) -> None:
        self.derived = derived
        self.topics = topics
        self.address = address
        self.rescan = rescan
        self.group = group_name(derived)
        self.readers = [ChannelReader(source, topics) for source in derived.sources]
        self._stopping = threading.Event()
        self._app: _Application | None = None
        self._thread: threading.Thread | None = None
        self._watcher: threading.Thread | None = None
        self._sources: dict[int, list[str]] = {}
        #: RocksDB files of this process's state (the changelog topics are the durable copy).
        self._state_dir = tempfile.mkdtemp(prefix="fastapi-streaming-quix-")
        self.flow: Flow | None = None

    @property
    def assigned(self) -> bool:
        app = self._app
        return app is not None and app.assigned

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(
            target=self._run, name=f"quix {self.derived.address}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        app = self._app
        if app is not None:
            app.stop()
        if self._thread is not None:
            self._thread.join()
        shutil.rmtree(self._state_dir, ignore_errors=True)

    def source_topics(self) -> dict[int, list[str]]:
        """The broker's topics that belong to each source, by source index."""
        admin = TopicAdmin(broker_address=self.address)
        names = admin.list_topics(timeout=10)
        found: dict[int, list[str]] = {}
        for name in names:
            for index, reader in enumerate(self.readers):
                if reader.read(name) is not None:
                    found.setdefault(index, []).append(name)
                    break
        return {index: sorted(topics) for index, topics in found.items()}

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._sources = self.source_topics()
            except Exception as exc:
                logger.warning("Could not list Kafka topics for %s: %r", self.derived.address, exc)
                self._stopping.wait(self.rescan)
                continue
            if not self._sources:
                self._stopping.wait(self.rescan)
                continue
            try:
                self._run_once()
            except Exception:
                logger.exception("The Quix application of %s failed", self.derived.address)
                self._stopping.wait(self.rescan)

    def _run_once(self) -> None:
        admin = TopicAdmin(broker_address=self.address)
        app = _Application(
            broker_address=self.address,
            consumer_group=self.group,
            auto_offset_reset="earliest",
            state_dir=self._state_dir,
            commit_interval=COMMIT_INTERVAL,
            consumer_extra_config=dict(CONSUMER_CONFIG),
            topic_manager=RetentionDefaultingTopicManager(
                topic_admin=admin, consumer_group=self.group
            ),
        )
        flow = Flow(self.derived, self.topics, self._loop)
        if self.flow is not None:
            flow.stats = self.flow.stats  # the counts go on across restarts
        try:
            flow.build(app, self._sources)
        except Exception:
            logger.exception(
                "Quix Streams refused the flow of %s; it is not computed", self.derived.address
            )
            self._stopping.set()  # trying again would fail again
            return
        self.flow = flow
        self._app = app
        watcher = threading.Thread(target=self._watch, args=(app,), daemon=True)
        watcher.start()
        try:
            if not self._stopping.is_set():
                app.run()
        finally:
            self._app = None
            watcher.join()

    def _watch(self, app: _Application) -> None:
        """Stop ``app`` when a source gains a topic (so it restarts reading that one too)."""
        known = self._sources
        while not self._stopping.wait(self.rescan):
            if self._app is not app:
                return
            with contextlib.suppress(Exception):
                if self.source_topics() != known:
                    logger.info("New source topics for %s: restarting", self.derived.address)
                    app.stop()
                    return


def create(context: EngineContext) -> QuixEngine:
    """The ``quix`` engine's factory (see :mod:`.plugin`)."""
    return QuixEngine(context)
