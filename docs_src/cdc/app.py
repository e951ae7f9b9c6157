"""The todos table as a topic: every committed insert, update and delete reaches clients.

Run it with a PostgreSQL that has ``wal_level = logical``:

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/app fastapi-streaming run docs_src.cdc.app:app
"""

from __future__ import annotations

import os

import psycopg2
from fastapi import FastAPI

from fastapi_streaming import StreamingAPI
from fastapi_streaming.cdc import Change, PostgresChanges

DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/app")


def create_todos() -> None:
    """Create the table when it is missing (capture checks it exists at startup)."""
    connection = psycopg2.connect(DATABASE_URL)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(
                "CREATE TABLE IF NOT EXISTS todos ("
                " id serial PRIMARY KEY,"
                " task text NOT NULL,"
                " done boolean NOT NULL DEFAULT false)"
            )
    finally:
        connection.close()


create_todos()
streaming = StreamingAPI(title="Todos", version="1.0.0", broker="memory://")


@streaming.changes("/tables/todos", source=PostgresChanges(DATABASE_URL, table="public.todos"))
async def todos(change: Change) -> Change:
    """Every committed change of the todos table, in Debezium's envelope."""
    return change


app = FastAPI()
streaming.init_app(app)
