"""The console of a running streaming API: live snapshots, usage, and admin actions.

Takes narrow inputs: the :class:`~fastapi_streaming.context.StreamingContext` (access
control, limits, the runtime), the usage recorder and the WebSub hub, never the API object.
Once per ``interval`` it builds this worker's view, shares it with the other workers through
the analytics storage, and, while administrators watch, builds the whole board once and
queues the same encoded snapshot to each of their streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from ..events import EncodedEvent, Event
from ..queues import ClientQueue
from ..stopping import cancel_until_done
from ..topics import OverflowPolicy
from .disconnect import Disconnector
from .guard import AdminGuard
from .settings import ConsoleSettings
from .worker_view import WorkerView, merge

if TYPE_CHECKING:
    from ..analytics import UsageRecorder
    from ..context import StreamingContext
    from ..runtime import StreamingRuntime
    from ..websub.admin import HubAdmin
    from ..websub.hub import WebSubHub

logger = logging.getLogger("fastapi_streaming.console")

#: The SSE event name of a snapshot on the admin stream.
SNAPSHOT = "snapshot"


class Console:
    """What the console routes use."""

    def __init__(
        self,
        context: StreamingContext,
        settings: ConsoleSettings,
        *,
        recorder: UsageRecorder | None = None,
        websub: WebSubHub | None = None,
    ) -> None:
        self.context = context
        self.settings = settings
        self.recorder = recorder
        self.websub = websub
        self.guard = AdminGuard(context.access, settings.admin_scope)
        self.view = WorkerView()
        #: The queues of the administrators' snapshot streams in this process.
        self.viewers: set[ClientQueue] = set()
        self.disconnector: Disconnector | None = None
        self._task: asyncio.Task[None] | None = None

    # -- running -------------------------------------------------------------------------------

    async def start(self, runtime: StreamingRuntime) -> None:
        self.disconnector = Disconnector(runtime, self.settings.channel, self.view.worker)
        await self.disconnector.start()
        self._task = asyncio.create_task(self._run(), name="fastapi-streaming console")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_until_done([self._task])
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.disconnector is not None:
            await self.disconnector.stop()
            self.disconnector = None

    async def _run(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.settings.interval)
            try:
                await self.tick()
                failing = False
            except Exception:
                # Once per outage (the analytics storage down, say), not once a second.
                if not failing:
                    logger.warning("Could not make the console's snapshot", exc_info=True)
                failing = True

    async def tick(self) -> None:
        """Share this worker's view; push one snapshot to every administrator watching."""
        runtime = self.context.runtime
        own = self.view.snapshot(runtime, self.context.limits)
        if self.recorder is not None:
            try:
                await self.recorder.store.put_live(own["worker"], own, 3 * self.settings.interval)
            except Exception:  # the storage is down: viewers still get this worker's view
                logger.debug("Could not share this worker's view", exc_info=True)
        self.viewers = {queue for queue in self.viewers if queue.closed is None}
        if self.viewers:
            self.push(await self.snapshot(own))

    def push(self, board: dict[str, Any]) -> None:
        """Queue one snapshot, encoded once, to every viewer (a slow one keeps the latest)."""
        encoded = _encode(board)
        for queue in tuple(self.viewers):
            queue.put(encoded, OverflowPolicy.LATEST)

    def push_to(self, queue: ClientQueue, board: dict[str, Any]) -> None:
        """A new viewer's first snapshot, without waiting for the next interval."""
        queue.put(_encode(board), OverflowPolicy.LATEST)

    # -- the board -----------------------------------------------------------------------------

    async def snapshot(self, own: dict[str, Any] | None = None) -> dict[str, Any]:
        """Everything the console shows, over every worker that shares the storage."""
        runtime = self.context.runtime
        if own is None:
            own = self.view.snapshot(runtime, self.context.limits)
        others: list[dict[str, Any]] = []
        if self.recorder is not None:
            with contextlib.suppress(Exception):  # the storage is down: this worker alone
                live = await self.recorder.store.live()
                others = [view for view in live if view["worker"] != own["worker"]]
        board = merge([own, *others])
        board["time"] = time.time()
        board["health"] = await runtime.health()
        board["top_consumers"], board["throttled"] = await self._consumers(board)
        board["websub"] = await self._websub()
        return board

    async def _consumers(
        self, board: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        from ..analytics import summarize

        live: dict[str, dict[str, Any]] = board.pop("consumers")
        usage: dict[str, dict[str, int]] = {}
        throttled: list[dict[str, Any]] = []
        if self.recorder is not None:
            try:
                records = await self.recorder.query(since=time.time() - self.settings.window)
            except Exception:
                records = []
            for total in summarize(records, ("principal",)):
                usage[total.group["principal"]] = total.as_dict()
            throttled = [
                total.as_dict()
                for total in summarize(records, ("principal", "plan"))
                if total.throttled
            ]
            throttled.sort(key=lambda item: -item["throttled"])
        consumers = []
        for principal in {*live, *usage}:
            figures = live.get(principal, {"connections": 0, "dropped": 0, "transports": {}})
            used = usage.get(principal, {})
            consumers.append(
                {
                    "principal": principal,
                    **figures,
                    "delivered": used.get("delivered", 0),
                    "published": used.get("published", 0),
                }
            )
        consumers.sort(
            key=lambda c: (-(c["delivered"] + c["published"]), -c["connections"], c["principal"])
        )
        top = self.settings.top
        return consumers[:top], throttled[:top]

    def hub_admin(self) -> HubAdmin | None:
        """The hub's admin, while the hub runs (None without WebSub)."""
        if self.websub is None:
            return None
        from ..websub.admin import HubAdmin

        try:
            return HubAdmin(self.websub.repo)
        except RuntimeError:
            return None

    async def _websub(self) -> dict[str, Any]:
        admin = self.hub_admin()
        if admin is None:
            return {"enabled": False, "subscriptions": []}
        subscriptions = await admin.subscriptions()
        return {"enabled": True, "subscriptions": [s.as_dict() for s in subscriptions]}


def _encode(board: dict[str, Any]) -> EncodedEvent:
    data = json.dumps(board, separators=(",", ":"), default=str).encode()
    return EncodedEvent(Event.create(SNAPSHOT, None), data)
