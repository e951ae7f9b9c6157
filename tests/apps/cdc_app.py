"""A table as a topic, for the tests that run capture in server processes.

``DATABASE_URL`` and ``CDC_TABLE`` name the table (a ``mysql://`` URL captures from
MySQL/MariaDB), ``BROKER_URL`` the broker shared by the processes, ``CHANNEL_PREFIX`` keeps the
channels of one test apart from another's, and ``CDC_ROUTE_BY`` (a column) routes each row to
the address of its value: ``/tables/orders/{column}``.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from fastapi_streaming import StreamingAPI
from fastapi_streaming.cdc import Change, MySQLChanges, PostgresChanges

PREFIX = os.environ.get("CHANNEL_PREFIX", "")
ROUTE_BY = os.environ.get("CDC_ROUTE_BY")
DATABASE_URL = os.environ["DATABASE_URL"]
streaming = StreamingAPI(title="Capture test app", broker=os.environ["BROKER_URL"])

source: MySQLChanges | PostgresChanges
if DATABASE_URL.startswith("mysql://"):
    source = MySQLChanges(DATABASE_URL, table=os.environ["CDC_TABLE"])
else:
    source = PostgresChanges(DATABASE_URL, table=os.environ["CDC_TABLE"])


@streaming.changes(
    f"/tables/orders/{{{ROUTE_BY}}}" if ROUTE_BY else "/tables/orders",
    source=source,
    channel=PREFIX + (f"tables.orders.{{{ROUTE_BY}}}" if ROUTE_BY else "tables.orders"),
)
async def orders(change: Change) -> Change:
    """Every committed change of the orders table."""
    return change


app = FastAPI()
streaming.init_app(app)
