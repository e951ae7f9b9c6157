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


async def test_a_dropped_column_does_not_shift_the_values_after_it(orders: str) -> None:
    """Values are matched to columns by the table's new layout: after a column in the middle
    is dropped (and another retyped under the same name), every value keeps its own column,
    in live changes, in a new client's snapshot and in the AsyncAPI document."""
    env = {"DATABASE_URL": DSN, "CDC_TABLE": f"public.{orders}", "BROKER_URL": "memory://"}
    with ServerProcess("tests.apps.cdc_app:app", env=env) as server:
        async with sse_stream(server.url, "/streams/sse/tables/orders") as client:
            execute(f"INSERT INTO {orders} (customer_id, item, email) VALUES (1, 'a', 'e@x')")
            await client.wait_for(1, timeout=20)
            execute(f"ALTER TABLE {orders} DROP COLUMN item, DROP COLUMN email")
            execute(
                f"INSERT INTO {orders} (customer_id, amount, meta) VALUES (2, 7.25, '{{\"k\": 1}}')"
            )
            await client.wait_for(2, timeout=20)
            execute(f"ALTER TABLE {orders} DROP COLUMN amount, ADD COLUMN amount int")
            execute(f"INSERT INTO {orders} (customer_id, amount) VALUES (3, 9)")
            await client.wait_for(3, timeout=20)
            async with httpx.AsyncClient(base_url=server.url) as http:
                document = (await http.get("/asyncapi.json")).json()
            async with sse_stream(
                server.url, "/streams/sse/tables/orders", snapshot="true"
            ) as late:
                await late.wait_for(3, timeout=20)
    first, second, third = (data["after"] for data in client.data())
    assert (first["item"], first["email"]) == ("a", "e@x")
    assert {k: second[k] for k in ("customer_id", "amount", "meta")} == {
        "customer_id": 2,
        "amount": "7.25",  # numeric: exact, as text
        "meta": {"k": 1},
    }
    assert "item" not in second and "email" not in second
    assert list(third) == ["id", "customer_id", "meta", "at", "amount"]
    assert (third["customer_id"], third["amount"], third["meta"]) == (3, 9, None)
    snapshot = {data["after"]["customer_id"]: data["after"] for data in late.data()}
    assert {data["op"] for data in late.data()} == {"r"}
    assert list(snapshot[2]) == ["id", "customer_id", "meta", "at", "amount"]
    assert (snapshot[2]["meta"], snapshot[2]["amount"]) == ({"k": 1}, None)
    assert snapshot[3]["amount"] == 9
    (row,) = [s for name, s in document["components"]["schemas"].items() if name.endswith("Row")]
    assert list(row["properties"]) == ["id", "customer_id", "meta", "at", "amount"]
    assert row["properties"]["amount"]["anyOf"][0]["type"] == "integer"
