"""Ending a principal's connections on every worker process.

The worker that takes the request closes the principal's connections it holds at once, and
publishes the request on the broker's console channel; every other worker subscribed to it
closes the ones it holds. On ``memory://`` there is one process and the broadcast reaches
only it. SSE streams end with a last ``close`` event, WebSockets close with 1008.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from ..queues import DISCONNECTED, CloseReason

if TYPE_CHECKING:
    from broadcaster import Event as BrokerMessage

    from ..runtime import StreamingRuntime

logger = logging.getLogger("fastapi_streaming.console")

REASON = CloseReason(DISCONNECTED, "disconnected by an administrator")


def close_connections(runtime: StreamingRuntime, principal: str) -> int:
    """Close the principal's connections in this process; returns how many."""
    queues = [
        queue
        for queue in runtime.fanout.queues
        if queue.owner is not None and queue.owner.principal == principal
    ]
    for queue in queues:
        queue.close(REASON)
    return len(queues)


class Disconnector:
    """Sends and follows disconnect requests on the broker's console channel."""

    def __init__(self, runtime: StreamingRuntime, channel: str, worker: str) -> None:
        self.runtime = runtime
        self.channel = channel
        self.worker = worker
        self.listening = False

    async def start(self) -> None:
        try:
            await self.runtime.broker.subscribe(self.channel, self._receive)
            self.listening = True
        except Exception:
            logger.warning(
                "The console cannot follow channel %r on this broker: disconnecting a "
                "principal reaches this worker process only.",
                self.channel,
                exc_info=True,
            )

    async def stop(self) -> None:
        if self.listening:
            self.listening = False
            try:
                await self.runtime.broker.unsubscribe(self.channel, self._receive)
            except Exception:
                logger.debug("Could not leave the console channel", exc_info=True)

    async def disconnect(self, principal: str) -> dict[str, object]:
        """Close the principal's connections here, and ask every other worker to."""
        closed = close_connections(self.runtime, principal)
        message = {"action": "disconnect", "principal": principal, "from": self.worker}
        broadcast = False
        if self.listening:
            try:
                await self.runtime.broker.publish(self.channel, json.dumps(message))
                broadcast = True
            except Exception:
                logger.warning("Could not reach the other workers", exc_info=True)
        return {"principal": principal, "closed_here": closed, "broadcast": broadcast}

    def _receive(self, message: BrokerMessage) -> None:
        try:
            request = json.loads(message.message)
        except (TypeError, ValueError):
            return
        if not isinstance(request, dict) or request.get("from") == self.worker:
            return
        if request.get("action") == "disconnect" and isinstance(request.get("principal"), str):
            closed = close_connections(self.runtime, request["principal"])
            logger.info("Disconnected %d connection(s) of %r", closed, request["principal"])
