"""What the edges of a streaming API (transports, the WebSub hub) are given to work with.

The transports and the WebSub hub never see the :class:`~fastapi_streaming.StreamingAPI`
object: they get a :class:`StreamingContext`, which holds the topic registry, access control,
the limits and the running runtime, and nothing else. The API object owns one and fills in
the runtime during the app's lifespan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection

from .runtime import StreamingRuntime
from .security.access import AccessControl
from .topics import Mode, Topic, TopicRegistry

if TYPE_CHECKING:
    from .limits import Limiter


class NotRunningError(RuntimeError):
    """The streaming API was used outside the app's lifespan."""


@dataclass
class StreamingContext:
    """The narrow view of one streaming API that its transports and WebSub hub use.

    Args:
        topics: the topics clients may reach.
        access: who clients are and what their scopes allow.
        prefix: where the transports' routes live (``/streams``).
        max_queue: events a client may have waiting before its overflow policy applies.
        max_message_size: the largest event a client may send, in bytes.
        public_url: where clients reach the app, when it is configured.
        limits: enforces the plans of clients, when any is declared (needs ``limits``).
    """

    topics: TopicRegistry
    access: AccessControl
    prefix: str = "/streams"
    max_queue: int = 1000
    max_message_size: int = 1024 * 1024
    public_url: str | None = None
    limits: Limiter | None = None
    _runtime: StreamingRuntime | None = field(default=None, repr=False)

    @property
    def runtime(self) -> StreamingRuntime:
        """The running parts; only between the app's startup and shutdown."""
        if self._runtime is None:
            raise NotRunningError(
                "The streaming API is not running. It runs during the lifespan of the app "
                "it was added to with init_app(app), or inside `async with streaming.running()`."
            )
        return self._runtime

    @property
    def is_running(self) -> bool:
        return self._runtime is not None

    def attach(self, runtime: StreamingRuntime | None) -> None:
        """Set the runtime when the API starts; ``None`` when it stops."""
        self._runtime = runtime

    async def authorize(
        self, connection: HTTPConnection, accesses: Sequence[tuple[Topic, Mode]]
    ) -> list[object]:
        """Decide whether ``connection`` may use every (topic, mode) in ``accesses``.

        Returns objects handlers may ask for by annotation (such as the client's principal), or
        raises :class:`~fastapi_streaming.errors.Unauthorized` or
        :class:`~fastapi_streaming.errors.Forbidden`. A topic mode without scopes is open
        (unless ``require_auth``); one with scopes needs a principal holding all of them.
        """
        principal = await self.access.check(connection, accesses)
        return [principal] if principal is not None else []
