"""Orders as a table topic: routed by customer, a column left out, one masked, drafts dropped."""

from __future__ import annotations

import os

from pydantic import BaseModel

from fastapi_streaming import StreamingAPI
from fastapi_streaming.cdc import Change, PostgresChanges

DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/app")
streaming = StreamingAPI(title="Shop", broker="memory://")


class OrderRow(BaseModel):
    id: int
    customer_id: int
    status: str
    email: str | None = None


@streaming.changes(
    "/tables/orders/{customer_id}",
    source=PostgresChanges(DATABASE_URL, table="public.orders"),
    scopes=["orders:read"],
    exclude=["internal_note"],
    mask=["email"],
)
async def orders(change: Change[OrderRow], customer_id: str) -> Change[OrderRow] | None:
    """Orders, each on the channel of its customer."""
    if change.after is not None and change.after.status == "draft":
        return None  # drop it
    return change  # or reshape it: what you return is what clients get
