"""Hook specifications of the ``fastapi_streaming`` plugin system.

A plugin is a module or object with functions marked ``@hookimpl`` (``from fastapi_streaming
import hookimpl``); a separately installed package makes itself known through the
``fastapi_streaming`` entry-point group. The built-in backends register through the very same
hook, so they are not special.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from broadcaster import BroadcastBackend
from broadcaster import Event as BrokerMessage

from ..hooks import PROJECT_NAME, hookimpl, hookspec

__all__ = [
    "PROJECT_NAME",
    "BackendFactory",
    "BrokerMessage",
    "fastapi_streaming_backends",
    "hookimpl",
    "hookspec",
]

# ``BrokerMessage`` is broadcaster's ``Event`` (a channel and a message), the one name this
# package uses for it, so it is never confused with the public ``fastapi_streaming.Event``.

#: Builds a backend from the broker URL the application was configured with.
BackendFactory = Callable[[str], BroadcastBackend]


@hookspec
def fastapi_streaming_backends() -> Mapping[str, BackendFactory]:  # type: ignore[empty-body]
    """Return the broker backends this plugin provides, keyed by URL scheme.

    Each value is called with the full broker URL (for example ``"mqtt://127.0.0.1:1883"``)
    and returns an object implementing ``broadcaster.BroadcastBackend``: ``connect``,
    ``disconnect``, ``subscribe``, ``unsubscribe``, ``publish`` and ``next_published``.
    """
