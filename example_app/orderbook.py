"""The order book as a database table, streamed as its changes, when the app runs on PostgreSQL.

With ``DATABASE_URL`` on PostgreSQL (``postgresql+asyncpg://user@host:5432/db``, as for the
users), every accepted order is also written to the table ``order_book``, and that table is
the topic ``/tables/order_book`` (scope ``orders:read``): its inserts, updates and deletes,
read from the WAL, whoever writes them (this app, a back-office script, ``psql``). The page
subscribes with a snapshot, so it shows the rows already there, then every change. The server
needs ``wal_level = logical`` (see the change data capture guide).

On SQLite nothing of this exists: the page says the order book table needs PostgreSQL.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from sqlalchemy import text

from fastapi_streaming import StreamingAPI
from fastapi_streaming.cdc import Change, PostgresChanges

from .models import Order
from .users import DATABASE_URL, engine

TABLE = "order_book"
ADDRESS = "/tables/order_book"

CREATE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id text PRIMARY KEY,
    symbol text NOT NULL,
    side text NOT NULL,
    quantity integer NOT NULL,
    limit_price double precision,
    status text NOT NULL,
    placed_at timestamptz NOT NULL,
    placed_by text NOT NULL
)
"""


def libpq_url(database_url: str) -> str | None:
    """``DATABASE_URL`` as libpq reads it (no ``+driver``), or None if it is not PostgreSQL."""
    scheme, _, rest = database_url.partition("://")
    if scheme.split("+")[0] not in ("postgresql", "postgres"):
        return None
    return f"postgresql://{rest}"


#: The libpq URL of the order book's database, or None on SQLite.
ORDER_BOOK_DSN = libpq_url(DATABASE_URL)


def create_table(dsn: str) -> None:
    """Create the table when it is missing: capture checks it exists when the app starts, before
    the app's own startup code runs."""
    import psycopg2

    connection = psycopg2.connect(dsn)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(CREATE)
    finally:
        connection.close()


def slot_name(dsn: str) -> str:
    """Replication slots are named per server, not per database: one per database here."""
    database = urlsplit(dsn).path.strip("/") or "postgres"
    return re.sub(r"[^a-z0-9_]", "_", f"example_order_book_{database}".lower())[:63]


def declare(streaming: StreamingAPI, dsn: str) -> None:
    """Make the table a topic of ``streaming``."""
    create_table(dsn)
    source = PostgresChanges(dsn, table=f"public.{TABLE}", slot=slot_name(dsn))

    @streaming.changes(ADDRESS, source=source, scopes=["orders:read"])
    async def order_book_changes(change: Change) -> Change:
        """Every committed change of the order book table, in Debezium's envelope."""
        return change


async def record(order: Order) -> None:
    """Write an accepted order to the order book table (on PostgreSQL)."""
    async with engine.begin() as connection:
        await connection.execute(
            text(
                f"INSERT INTO {TABLE} (id, symbol, side, quantity, limit_price, status, "
                "placed_at, placed_by) VALUES (:id, :symbol, :side, :quantity, :limit_price, "
                ":status, :placed_at, :placed_by)"
            ),
            order.model_dump(),
        )
