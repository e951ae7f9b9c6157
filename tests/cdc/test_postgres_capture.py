"""Capture from PostgreSQL's WAL into the broker: the envelope, order, ids, routing, masking."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel

from fastapi_streaming import StreamingAPI
from fastapi_streaming.cdc import Change, PostgresChanges
from tests.cdc.harness import capturing, wait_until_capturing
from tests.support.asyncapi_parser import parse_documents
from tests.support.cdc import DSN, execute

pytestmark = [pytest.mark.postgres, pytest.mark.cdc]


async def run_sql(sql: str, params: Any = ()) -> None:
    await asyncio.to_thread(execute, sql, params)


async def test_a_transaction_arrives_in_commit_order_in_debeziums_envelope(orders: str) -> None:
    streaming = StreamingAPI(broker="memory://")

    @streaming.changes("/tables/orders", source=PostgresChanges(DSN, table=f"public.{orders}"))
    async def changes(change: Change) -> Change:
        return change

    async with capturing(streaming, ["tables.orders"]) as (_, inbox):
        await wait_until_capturing(streaming)
        await run_sql(
            f"BEGIN; INSERT INTO {orders} (customer_id, item, amount, meta) "
            f"VALUES (7, 'tea', 3.50, '{{\"a\": [1]}}'); "
            f"UPDATE {orders} SET item = 'green tea' WHERE customer_id = 7; "
            f"DELETE FROM {orders} WHERE customer_id = 7; COMMIT"
        )
        messages = await inbox.wait_for(3)

    assert [m["data"]["op"] for m in messages] == ["c", "u", "d"]
    created, updated, deleted = (m["data"] for m in messages)
    assert created["before"] is None
    assert created["after"]["item"] == "tea"
    assert created["after"]["amount"] == "3.50"  # numeric stays exact, as text
    assert created["after"]["meta"] == {"a": [1]}
    assert created["after"]["customer_id"] == 7
    assert updated["after"]["item"] == "green tea"
    assert updated["before"] is None  # the key did not change: PostgreSQL sends no old row
    assert deleted["after"] is None
    assert deleted["before"] == {"id": created["after"]["id"]}  # the key: default identity
    source = created["source"]
    assert source["connector"] == "postgresql"
    assert source["db"] == "test"
    assert source["schema"] == "public"
    assert source["table"] == orders
    assert source["snapshot"] is False
    assert isinstance(source["lsn"], int) and isinstance(source["txId"], int)
    assert {m["data"]["source"]["txId"] for m in messages} == {source["txId"]}
    lsns = [m["data"]["source"]["lsn"] for m in messages]
    assert lsns == sorted(lsns) and len(set(lsns)) == 3
    assert len({m["id"] for m in messages}) == 3
    assert all(m["time"].endswith("Z") for m in messages)


async def test_the_same_change_has_the_same_id_after_a_restart(orders: str) -> None:
    """Unconfirmed changes are sent again after a restart, with the ids they had."""
    source = PostgresChanges(DSN, table=f"public.{orders}")
    streaming = StreamingAPI(broker="memory://")
    streaming.changes("/tables/orders", source=source)(lambda change: change)
    async with capturing(streaming, ["tables.orders"]) as (_, first):
        await wait_until_capturing(streaming)
        confirmed: list[Any] = []
        source.confirm = confirmed.append  # type: ignore[method-assign,assignment]
        await run_sql(f"INSERT INTO {orders} (customer_id, item) VALUES (1, 'a'), (2, 'b')")
        await first.wait_for(2)
    del source.confirm  # type: ignore[method-assign]

    again = StreamingAPI(broker="memory://")
    again.changes("/tables/orders", source=PostgresChanges(DSN, table=f"public.{orders}"))(
        lambda change: change
    )
    async with capturing(again, ["tables.orders"]) as (_, second):
        await second.wait_for(2)
    assert [m["id"] for m in second.messages] == [m["id"] for m in first.messages]
    assert second.data()[0]["source"] == first.data()[0]["source"]


class OrderRow(BaseModel):
    id: int
    customer_id: int
    item: str
    email: str | None = None


async def test_rows_are_routed_masked_and_filtered_before_they_leave(orders: str) -> None:
    # A delete's `before` must hold customer_id to be routed: the whole old row.
    await run_sql(f"ALTER TABLE {orders} REPLICA IDENTITY FULL")
    streaming = StreamingAPI(broker="memory://")
    seen: list[str] = []

    @streaming.changes(
        "/tables/orders/{customer_id}",
        source=PostgresChanges(DSN, table=f"public.{orders}"),
        exclude=["meta", "at", "amount"],
        mask=["email"],
        scopes=["orders:read"],
    )
    async def changes(change: Change[OrderRow], customer_id: str) -> Change[OrderRow] | None:
        """Orders of one customer."""
        seen.append(customer_id)
        if change.after is not None and change.after.item == "secret":
            return None
        return change

    topic = streaming.topics.get("/tables/orders/{customer_id}")
    assert topic is not None and topic.subscribe is not None
    assert topic.subscribe.scopes == ("orders:read",)
    async with capturing(streaming, ["tables.orders.1", "tables.orders.2"]) as (_, inbox):
        await wait_until_capturing(streaming)
        await run_sql(
            f"INSERT INTO {orders} (customer_id, item, email) VALUES "
            "(1, 'tea', 'a@example.com'), (2, 'secret', 'b@example.com'), (2, 'cake', NULL)"
        )
        await inbox.wait_for(2)
        await run_sql(f"DELETE FROM {orders} WHERE item = 'tea'")
        messages = await inbox.wait_for(3)
        await asyncio.sleep(0.3)
    assert seen == ["1", "2", "2", "1"]
    assert [(m["channel"], m["subject"]) for m in messages] == [
        ("tables.orders.1", "/tables/orders/1"),
        ("tables.orders.2", "/tables/orders/2"),
        ("tables.orders.1", "/tables/orders/1"),
    ]
    deleted = messages[2]["data"]
    assert deleted["op"] == "d"
    assert deleted["before"]["item"] == "tea"  # REPLICA IDENTITY FULL: the whole old row
    assert deleted["before"]["email"] == "****"
    first = messages[0]["data"]["after"]
    assert first["email"] == "****"
    assert "meta" not in first and "amount" not in first
    assert messages[1]["data"]["after"]["email"] is None
    assert len(inbox.messages) == 3


async def test_the_topic_payload_is_the_tables_reflected_columns(orders: str) -> None:
    streaming = StreamingAPI(broker="memory://")
    streaming.changes(
        "/tables/orders", source=PostgresChanges(DSN, table=f"public.{orders}"), mask=["email"]
    )(lambda change: change)
    async with streaming.running():
        document = streaming.asyncapi()
        documents = {v: streaming.asyncapi(v) for v in ("3.0.0", "2.6.0")}
    results = parse_documents(documents)
    assert {name: found["errors"] for name, found in results.items()} == {
        "3.0.0": [],
        "2.6.0": [],
    }
    schemas = document["components"]["schemas"]
    row = next(schema for name, schema in schemas.items() if name.endswith("Row"))
    properties = row["properties"]
    assert list(properties) == ["id", "customer_id", "item", "email", "amount", "meta", "at"]
    assert properties["id"]["type"] == "integer"
    assert properties["customer_id"]["type"] == "integer"
    assert properties["email"]["anyOf"][0]["type"] == "string"
    assert set(row["required"]) == {"id", "customer_id", "item"}


async def test_a_router_declares_a_table_topic_under_its_prefix_and_scopes(orders: str) -> None:
    from fastapi_streaming import StreamingRouter

    router = StreamingRouter(prefix="/shop", scopes=["shop:read"])

    @router.changes("/orders", source=PostgresChanges(DSN, table=f"public.{orders}"))
    async def changes(change: Change) -> Change:
        return change

    streaming = StreamingAPI(broker="memory://")
    streaming.include_router(router, prefix="/v1", scopes=["v1"])
    topic = streaming.topics.get("/v1/shop/orders")
    assert topic is not None and topic.subscribe is not None
    assert set(topic.subscribe.scopes) == {"shop:read", "v1"}
    async with capturing(streaming, [topic.channel or ""]) as (_, inbox):
        await wait_until_capturing(streaming)
        await run_sql(f"INSERT INTO {orders} (customer_id, item) VALUES (1, 'routed')")
        (message,) = await inbox.wait_for(1)
    assert message["subject"] == "/v1/shop/orders"
    assert message["data"]["after"]["item"] == "routed"
