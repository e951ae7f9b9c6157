"""One table's capture: source changes -> masking -> handler -> broker, confirmed afterwards.

A :class:`TableCapture` is a producer: it talks to the broker like any publisher (through the
``publish`` callable it is given), so its events reach clients through the ordinary subscribe
path. It runs in every worker but captures only in the one that holds the source's lease.

At-least-once: a source hands over changes in commit order followed by a checkpoint, and the
checkpoint is confirmed to the database only once every change before it was accepted by the
broker. A crash between the two replays the changes, with the same ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import pydantic_core
from pydantic import TypeAdapter, ValidationError

from ..dependencies import HandlerPlan, call_handler
from ..events import Event
from ..stopping import cancel_until_done
from ..topics import Topic
from .change import change_event_id, iso_time
from .errors import CaptureConfigurationError, LeaseLost
from .table import TableInfo, shape_row

logger = logging.getLogger("fastapi_streaming.cdc")

#: Hands one message to the broker; raises when the broker did not accept it.
Publish = Callable[[str, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class CapturedChange:
    """A change as a source reads it: column values by name, and where it is in the log."""

    op: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    #: Debezium's ``source`` block.
    source: dict[str, Any]
    commit_ms: int
    #: Unique within the database and stable across restarts: the event id is made from it.
    position: str
    #: What a client snapshot's fence compares (the event's ``position`` on the broker): the
    #: transaction id (PostgreSQL), the binlog file and position (MySQL/MariaDB).
    fence: str | None = None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Everything the source handed over before this is safe to confirm with ``token``."""

    token: Any


@dataclass(frozen=True, slots=True)
class TableChanged:
    """The table's columns changed while streaming (a column added, dropped or retyped)."""


#: What a source hands over, in order.
Item = CapturedChange | Checkpoint | TableChanged


class SourceSnapshot(Protocol):
    """The rows of one client's snapshot, and its fence against the live changes."""

    def rows(self) -> AsyncIterator[list[CapturedChange]]: ...

    def covers(self, fence: str | None) -> bool:
        """Whether the change with this ``fence`` value is in the snapshot already."""
        ...

    def passed(self, fence: str | None) -> bool:
        """Whether the change with this ``fence`` value, and every later one, is after it."""
        ...

    async def close(self) -> None: ...


class Source(Protocol):
    """A database table's changes. :class:`~fastapi_streaming.cdc.PostgresChanges` is one."""

    name: str

    async def check(self, parameters: tuple[str, ...]) -> TableInfo:
        """Check the database is set up for capture and reflect the table; raise
        :class:`CaptureConfigurationError` naming the fix if not."""
        ...

    async def reflect(self) -> TableInfo:
        """The table's columns as they are now (after a :class:`TableChanged`)."""
        ...

    def lease(self) -> AbstractAsyncContextManager[Callable[[], bool]]:
        """Hold the one capture lease of this source; yields whether it is still held."""
        ...

    def changes(self) -> AsyncGenerator[Sequence[Item], None]:
        """Snapshot rows, then live changes, in batches; an empty batch while idle."""
        ...

    async def confirm(self, token: Any) -> None:
        """The changes up to ``token`` are in the broker: the database may let them go."""
        ...

    def health(self) -> dict[str, Any]: ...

    async def close(self) -> None: ...


class TableCapture:
    """Captures one source into one topic, once per deployment."""

    def __init__(
        self,
        source: Source,
        topic: Topic,
        *,
        change_adapter: TypeAdapter[Any],
        plan: HandlerPlan | None = None,
        exclude: Sequence[str] = (),
        mask: Sequence[str] = (),
        on_table: Callable[[TableInfo], None] | None = None,
    ) -> None:
        self.source = source
        self.topic = topic
        self.change_adapter = change_adapter
        self.plan = plan
        self.exclude = frozenset(exclude)
        self.mask = frozenset(mask)
        self.on_table = on_table
        self.table: TableInfo | None = None
        self.state = "stopped"
        self.error: str | None = None
        self.published = 0
        self.dropped = 0
        self.failed = 0
        self._pending_since: int | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, publish: Publish) -> None:
        """Check the source (raising what is misconfigured), then capture in the background."""
        self.state = "checking"
        self.table = await self.source.check(self.topic.parameters)
        columns = {column.name for column in self.table.columns}
        unknown = (self.exclude | self.mask) - columns
        if columns and unknown:  # no columns: a source that learns them from its changes
            raise CaptureConfigurationError(
                f"exclude/mask name {sorted(unknown)}, which are not columns of "
                f"{self.table.qualified_name}."
            )
        if self.on_table is not None and self.table.columns:
            self.on_table(self.table)
        self._task = asyncio.create_task(
            self._run(publish), name=f"fastapi-streaming capture {self.source.name}"
        )

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_until_done([self._task])
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.source.close()
        self.state = "stopped"

    def health(self) -> dict[str, Any]:
        lag = 0.0
        if self._pending_since is not None:
            lag = max(0.0, time.time() - self._pending_since / 1000)
        return {
            "topic": self.topic.address,
            "state": self.state,
            "error": self.error,
            "published": self.published,
            "dropped": self.dropped,
            "failed": self.failed,
            "lag_seconds": round(lag, 3),
            **self.source.health(),
        }

    async def _run(self, publish: Publish) -> None:
        delay = 0.5
        while True:
            try:
                self.state = "waiting for the lease"
                async with (
                    self.source.lease() as held,
                    contextlib.aclosing(self.source.changes()) as changes,
                ):
                    self.state, self.error = "capturing", None
                    logger.info("Capturing %s into %s", self.source.name, self.topic.address)
                    async for batch in changes:
                        if not held():
                            raise LeaseLost(f"lost the capture lease of {self.source.name}")
                        await self._handle(batch, publish)
                        delay = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.state, self.error = "retrying", f"{type(exc).__name__}: {exc}"
                logger.warning("Capture of %s stopped (%s); retrying.", self.source.name, exc)
            self._pending_since = None
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 5.0)

    async def _handle(self, batch: Sequence[Item], publish: Publish) -> None:
        for item in batch:
            if isinstance(item, TableChanged):
                await self._table_changed()
                continue
            if isinstance(item, Checkpoint):
                await self.source.confirm(item.token)
                self._pending_since = None
                continue
            if self._pending_since is None:
                self._pending_since = item.commit_ms
            try:
                routed = await self.prepare(item)
            except Exception:
                # One change that cannot be handled must not stop every later one.
                logger.exception(
                    "Dropped the change at %s of %s: its handler or routing failed",
                    item.position,
                    self.source.name,
                )
                self.failed += 1
                routed = None
            if routed is None:
                self.dropped += 1
                continue
            await _publish_until_accepted(publish, *routed)
            self.published += 1

    async def _table_changed(self) -> None:
        """Describe the topic with the table's new columns; capture itself goes on as is."""
        try:
            self.table = await self.source.reflect()
        except Exception as exc:
            logger.warning("Could not read the new columns of %s: %s", self.source.name, exc)
            return
        logger.info("The columns of %s changed; the topic follows.", self.source.name)
        if self.on_table is not None and self.table.columns:
            self.on_table(self.table)

    async def prepare(self, change: CapturedChange) -> tuple[str, str] | None:
        """The channel and broker message of a change, or None when it is dropped."""
        before = shape_row(change.before, exclude=self.exclude, mask=self.mask)
        after = shape_row(change.after, exclude=self.exclude, mask=self.mask)
        params = self._route(change)
        if params is None:
            return None
        data = {
            "op": change.op,
            "before": before,
            "after": after,
            "source": change.source,
            "ts_ms": time.time_ns() // 1_000_000,
        }
        try:
            value = self.change_adapter.validate_python(data)
        except ValidationError as exc:
            logger.error(
                "Dropped the change at %s of %s: it does not match the handler's type: %s",
                change.position,
                self.source.name,
                exc.errors(include_url=False),
            )
            return None
        if self.plan is not None:
            value = await call_handler(self.plan, event=value, params=params, context=())
            if value is None:
                return None
        address = self.topic.address_for(params)
        event = Event(
            id=change_event_id(change.commit_ms, change.position),
            topic=address,
            time=iso_time(change.commit_ms),
            data=None,
            position=change.fence,
        )
        message = event.to_message(pydantic_core.to_json(value))
        return self.topic.channel_for(params), message

    def _route(self, change: CapturedChange) -> dict[str, Any] | None:
        """The address parameters of a change: its row's values of the parameter columns."""
        names = self.topic.parameters
        if not names:
            return {}
        row = change.after if change.after is not None else change.before
        if row is None or any(row.get(name) is None for name in names):
            logger.info(
                "A %r change of %s has no value for %s; it is not routed to any address.",
                change.op,
                self.source.name,
                list(names),
            )
            return None
        return {name: self.topic.convertors[name].convert(str(row[name])) for name in names}


async def _publish_until_accepted(publish: Publish, channel: str, message: str) -> None:
    """Publish, retrying while the broker refuses: a change is never skipped."""
    delay = 0.1
    while True:
        try:
            await publish(channel, message)
            return
        except Exception as exc:
            logger.warning("The broker did not take a change (%s); retrying.", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
