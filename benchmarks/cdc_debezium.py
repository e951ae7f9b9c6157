"""CPU cost of reading Debezium's JSON envelope, with and without the schema part.

    python -m benchmarks.cdc_debezium [--messages 50000]

Parses typical Debezium PostgreSQL change messages (``parse_change``: JSON decoding, envelope,
position for the id) and prints microseconds per message. The Kafka round trips are not part
of it; they depend on the Kafka deployment. Not a timed test.
"""

from __future__ import annotations

import argparse
import json
import time

from fastapi_streaming.cdc.debezium import parse_change

SCHEMA = {
    "type": "struct",
    "fields": [
        {"type": "struct", "field": name, "optional": True, "fields": [
            {"type": "int32", "optional": False, "field": "id"},
            {"type": "string", "optional": True, "field": "item"},
            {"type": "string", "optional": True, "field": "email"},
        ]}
        for name in ("before", "after")
    ],
    "optional": False,
    "name": "dbserver1.public.orders.Envelope",
}  # fmt: skip


def message(n: int, *, envelope: bool) -> bytes:
    payload = {
        "op": "c",
        "before": None,
        "after": {"id": n, "item": f"item {n}", "email": f"user{n}@example.com"},
        "source": {
            "version": "2.7.3.Final", "connector": "postgresql", "name": "dbserver1",
            "ts_ms": 1_764_655_200_000 + n, "snapshot": "false", "db": "inventory",
            "schema": "public", "table": "orders", "txId": 771 + n, "lsn": 23_811_912 + n,
        },
        "ts_ms": 1_764_655_200_500 + n,
    }  # fmt: skip
    document = {"schema": SCHEMA, "payload": payload} if envelope else payload
    return json.dumps(document).encode()


def measure(count: int, *, envelope: bool) -> float:
    messages = [(b'{"id":%d}' % n, message(n, envelope=envelope)) for n in range(count)]
    started = time.process_time()
    for key, value in messages:
        parse_change(key, value, topic="dbserver1.public.orders")
    return (time.process_time() - started) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    options = parser.parse_args()
    print(
        {
            "messages": options.messages,
            "us_per_message_plain": round(measure(options.messages, envelope=False), 2),
            "us_per_message_with_schema": round(measure(options.messages, envelope=True), 2),
        }
    )


if __name__ == "__main__":
    main()
