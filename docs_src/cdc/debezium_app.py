"""A Debezium change topic on Kafka as a table topic."""

from __future__ import annotations

from fastapi_streaming import StreamingAPI
from fastapi_streaming.cdc import Change, DebeziumChanges

streaming = StreamingAPI(title="Inventory", broker="memory://")


@streaming.changes(
    "/tables/customers",
    source=DebeziumChanges("kafka:9092", topic="dbserver1.inventory.customers"),
    mask=["email"],
)
async def customers(change: Change) -> Change:
    return change
