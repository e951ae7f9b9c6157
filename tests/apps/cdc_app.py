"""A table as a topic, for the tests that run capture in server processes.

``DATABASE_URL`` and ``CDC_TABLE`` name the table (a ``postgresql://`` or ``mysql://`` URL);
or ``DEBEZIUM_TOPIC`` and ``KAFKA_SERVERS`` name a Debezium change topic instead.
``BROKER_URL`` is the broker shared by the processes, ``CHANNEL_PREFIX`` keeps the channels of
one test apart from another's, and ``CDC_ROUTE_BY`` (a column) routes each row to the address
of its value: ``/tables/orders/{column}``.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from fastapi_streaming import StreamingAPI
from fastapi_streaming.cdc import (
    Change,
    DebeziumChanges,
    MySQLChanges,
    PostgresChanges,
    Source,
)


def source_from_environment() -> Source:
    if "DEBEZIUM_TOPIC" in os.environ:
        return DebeziumChanges(os.environ["KAFKA_SERVERS"], topic=os.environ["DEBEZIUM_TOPIC"])
    url, table = os.environ["DATABASE_URL"], os.environ["CDC_TABLE"]
    if url.startswith(("mysql://", "mariadb://")):
        return MySQLChanges(url, table=table)
    return PostgresChanges(url, table=table)


PREFIX = os.environ.get("CHANNEL_PREFIX", "")
ROUTE_BY = os.environ.get("CDC_ROUTE_BY")
streaming = StreamingAPI(title="Capture test app", broker=os.environ["BROKER_URL"])


@streaming.changes(
    f"/tables/orders/{{{ROUTE_BY}}}" if ROUTE_BY else "/tables/orders",
    source=source_from_environment(),
    channel=PREFIX + (f"tables.orders.{{{ROUTE_BY}}}" if ROUTE_BY else "tables.orders"),
)
async def orders(change: Change) -> Change:
    """Every committed change of the orders table."""
    return change


app = FastAPI()
streaming.init_app(app)
