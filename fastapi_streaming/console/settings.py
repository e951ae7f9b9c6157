"""How the operations console is set up (``StreamingAPI(console=ConsoleSettings(...))``)."""

from __future__ import annotations

from dataclasses import dataclass

#: The scope an administrator's token must hold, unless the settings name another.
ADMIN_SCOPE = "streams:admin"


@dataclass(frozen=True)
class ConsoleSettings:
    """The console at ``{prefix}/console`` and its admin routes under ``{prefix}/admin``.

    Args:
        admin_scope: the scope every console page, snapshot, usage query and action needs.
        interval: seconds between two live snapshots.
        window: seconds of usage analytics the top consumers and throttled principals cover.
        top: how many consumers and throttled principals the console lists.
        channel: the broker channel through which an action reaches every worker process.
    """

    admin_scope: str = ADMIN_SCOPE
    interval: float = 1.0
    window: int = 300
    top: int = 10
    channel: str = "fastapi-streaming.console"
