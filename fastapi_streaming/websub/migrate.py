"""Create the hub's tables ahead of time: ``python -m fastapi_streaming.websub.migrate URL``.

For deployments whose app user may not create tables: run this once with a user that may, and
start the app with ``WebSubSettings(create_schema=False)``. Creating tables that exist already
does nothing, so running it again is harmless.
"""

from __future__ import annotations

import argparse
import asyncio

from .repository import Repository
from .settings import WebSubSettings


async def migrate(database_url: str, table_prefix: str = "websub_") -> list[str]:
    """Create any missing tables; returns the names of the hub's tables."""
    repo = Repository(WebSubSettings(database_url=database_url, table_prefix=table_prefix))
    try:
        await repo.create_schema()
    finally:
        await repo.close()
    return sorted(repo.tables.metadata.tables)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m fastapi_streaming.websub.migrate",
        description="Create the WebSub hub's tables (subscriptions, events, deliveries).",
    )
    parser.add_argument("database_url", help="e.g. postgresql+asyncpg://user@host/db")
    parser.add_argument("--table-prefix", default="websub_")
    options = parser.parse_args(argv)
    for name in asyncio.run(migrate(options.database_url, options.table_prefix)):
        print(f"ready: {name}")


if __name__ == "__main__":
    main()
