"""WebSub: webhooks for receivers that cannot hold a connection open (W3C WebSub hub).

Enable it with ``StreamingAPI(websub=WebSubSettings(...))`` (or ``websub=True`` for a SQLite
file in the working directory). Needs the ``websub`` extra: SQLAlchemy, aiosqlite, httpx.
"""

from __future__ import annotations

from .settings import WebSubSettings

__all__ = ["WebSubSettings"]
