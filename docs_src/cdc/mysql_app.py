"""A MySQL/MariaDB table as a topic, from the row-based binlog."""

from __future__ import annotations

from fastapi_streaming import StreamingAPI
from fastapi_streaming.cdc import Change, MySQLChanges

streaming = StreamingAPI(title="Shop", broker="memory://")


@streaming.changes(
    "/tables/orders",
    source=MySQLChanges("mysql://capture:secret@127.0.0.1:3306/shop", table="shop.orders"),
)
async def orders(change: Change) -> Change:
    return change
