"""A table as a topic, for the tests that run capture in several server processes.

``DATABASE_URL`` and ``CDC_TABLE`` name the table, ``BROKER_URL`` the broker shared by the
processes, ``CHANNEL_PREFIX`` keeps the channels of one test apart from another's.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from fastapi_streaming import StreamingAPI
from fastapi_streaming.cdc import Change, PostgresChanges

PREFIX = os.environ.get("CHANNEL_PREFIX", "")
streaming = StreamingAPI(title="Capture test app", broker=os.environ["BROKER_URL"])


@streaming.changes(
    "/tables/orders",
    source=PostgresChanges(os.environ["DATABASE_URL"], table=os.environ["CDC_TABLE"]),
    channel=PREFIX + "tables.orders",
)
async def orders(change: Change) -> Change:
    """Every committed change of the orders table."""
    return change


app = FastAPI()
streaming.init_app(app)
