"""A column added or dropped while capture runs: clients keep getting changes, and the topic's
AsyncAPI payload follows the table's columns."""

from __future__ import annotations

import httpx
import pytest

from tests.support.cdc import DSN, execute
from tests.support.clients import sse_stream
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.postgres, pytest.mark.cdc]


async def test_changes_keep_flowing_across_added_and_dropped_columns(orders: str) -> None:
    env = {"DATABASE_URL": DSN, "CDC_TABLE": f"public.{orders}", "BROKER_URL": "memory://"}
    with ServerProcess("tests.apps.cdc_app:app", env=env) as server:
        async with sse_stream(server.url, "/streams/sse/tables/orders") as client:
            execute(f"INSERT INTO {orders} (customer_id, item) VALUES (1, 'first')")
            await client.wait_for(1, timeout=20)
            execute(f"ALTER TABLE {orders} ADD COLUMN note text, ADD COLUMN rank int")
            execute(
                f"INSERT INTO {orders} (customer_id, item, note, rank) VALUES (2, 'second', 'n', 4)"
            )
            await client.wait_for(2, timeout=20)
            async with httpx.AsyncClient(base_url=server.url) as http:
                document = (await http.get("/asyncapi.json")).json()
            execute(f"ALTER TABLE {orders} DROP COLUMN item")  # it was NOT NULL
            execute(f"INSERT INTO {orders} (customer_id) VALUES (3)")
            await client.wait_for(3, timeout=20)
    first, second, third = (data["after"] for data in client.data())
    assert first["item"] == "first" and "note" not in first
    assert second["note"] == "n"
    assert second["rank"] == 4  # a new int column is a number, from its type
    (row,) = [s for name, s in document["components"]["schemas"].items() if name.endswith("Row")]
    assert list(row["properties"])[-2:] == ["note", "rank"]
    assert "item" not in third and third["customer_id"] == 3
