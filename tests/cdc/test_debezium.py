"""Debezium's change topics on Kafka (tansu) as table topics."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from fastapi_streaming import StreamingAPI
from fastapi_streaming.cdc import Change, DebeziumChanges
from fastapi_streaming.cdc.debezium import NotAChange, parse_change
from tests.cdc.harness import capturing
from tests.support.tansu import TansuProcess

pytestmark = [pytest.mark.kafka, pytest.mark.cdc]


def debezium(op: str, before: Any, after: Any, lsn: int, *, envelope: bool) -> bytes:
    payload = {
        "op": op,
        "before": before,
        "after": after,
        "source": {
            "version": "2.7.3.Final",
            "connector": "postgresql",
            "name": "dbserver1",
            "ts_ms": 1_764_655_200_000 + lsn,
            "snapshot": "false",
            "db": "inventory",
            "sequence": '["100","200"]',
            "schema": "public",
            "table": "orders",
            "txId": 771,
            "lsn": lsn,
            "xmin": None,
        },
        "ts_ms": 1_764_655_200_500,
    }
    if envelope:
        schema = {"type": "struct", "optional": False, "name": "dbserver1.public.orders.Envelope"}
        return json.dumps({"schema": schema, "payload": payload}).encode()
    return json.dumps(payload).encode()


async def produce(broker: TansuProcess, topic: str, messages: list[tuple[Any, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker.address)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def test_debezium_events_with_and_without_schema_become_changes(
    tansu_broker: TansuProcess,
) -> None:
    topic = f"dbserver1.public.orders_{uuid.uuid4().hex[:8]}"
    key = b'{"id":1}'
    await produce(
        tansu_broker,
        topic,
        [
            (key, debezium("c", None, {"id": 1, "item": "tea"}, 100, envelope=True)),
            (
                key,
                debezium(
                    "u", {"id": 1, "item": "tea"}, {"id": 1, "item": "cake"}, 200, envelope=False
                ),
            ),
            (key, b"this is not json"),
            (key, debezium("d", {"id": 1, "item": "cake"}, None, 300, envelope=False)),
            (key, None),  # the tombstone after a delete
        ],
    )
    source = DebeziumChanges(tansu_broker.address, topic=topic)
    streaming = StreamingAPI(broker="memory://")

    @streaming.changes("/tables/orders", source=source)
    async def orders(change: Change) -> Change:
        return change

    async with capturing(streaming, ["tables.orders"]) as (_, inbox):
        messages = await inbox.wait_for(3, timeout=60)
        report = streaming.producers.health()[source.name]
    assert [m["data"]["op"] for m in messages] == ["c", "u", "d"]
    created, updated, deleted = (m["data"] for m in messages)
    assert created["after"] == {"id": 1, "item": "tea"}
    assert updated["before"]["item"] == "tea" and updated["after"]["item"] == "cake"
    assert deleted["after"] is None
    assert created["source"]["lsn"] == 100 and created["source"]["snapshot"] is False
    assert created["source"]["version"] == "2.7.3.Final"  # Debezium's fields are kept
    assert created["source"]["sequence"] == '["100","200"]'
    assert len({m["id"] for m in messages}) == 3
    assert report["skipped"] == 1

    # Offsets were committed after the broker took the changes: a restart reads on from there.
    await produce(
        tansu_broker,
        topic,
        [(key, debezium("c", None, {"id": 2, "item": "pie"}, 400, envelope=False))],
    )
    again = StreamingAPI(broker="memory://")
    again.changes("/tables/orders", source=DebeziumChanges(tansu_broker.address, topic=topic))(
        orders
    )
    async with capturing(again, ["tables.orders"]) as (_, second):
        (message,) = await second.wait_for(1, timeout=60)
    assert message["data"]["after"]["item"] == "pie"


def test_the_id_position_comes_from_debeziums_source_and_the_key() -> None:
    value = debezium("r", None, {"id": 1}, 100, envelope=False)
    first = parse_change(b'{"id":1}', value, topic="t")
    second = parse_change(b'{"id":2}', value, topic="t")
    assert first is not None and second is not None
    assert first.position != second.position  # snapshot rows share the lsn; keys differ
    assert first.position == parse_change(b'{"id":1}', value, topic="t").position  # type: ignore[union-attr]
    assert parse_change(b"k", None, topic="t") is None
    with pytest.raises(NotAChange):
        parse_change(b"k", b'{"op": "x"}', topic="t")
