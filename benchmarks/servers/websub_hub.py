"""fastapi-streaming with its WebSub hub: the app of the WebSub scenario.

One topic ``/bench/{room}`` to publish to and subscribe to, the hub's database from
``BENCH_WEBSUB_DB`` (SQLite or PostgreSQL, tables under ``BENCH_WEBSUB_PREFIX``), callbacks
allowed on 127.0.0.1 (over HTTPS, trusting the certificate of ``BENCH_WEBSUB_CA``) and limits
raised so that one host may hold every subscription. Everything else is the hub's default, as a
deployment would have it.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI

from fastapi_streaming import StreamingAPI
from fastapi_streaming.websub import WebSubSettings

app = FastAPI()
streaming = StreamingAPI(
    title="Bench WebSub",
    version="1",
    websub=WebSubSettings(
        database_url=os.environ["BENCH_WEBSUB_DB"],
        table_prefix=os.environ.get("BENCH_WEBSUB_PREFIX", "websub_"),
        allow_networks=("127.0.0.1/32",),
        max_subscriptions_per_host=100_000,
        max_subscriptions_per_topic=100_000,
        rate_limit=1_000_000,
        verify_concurrency=64,
        concurrency=int(os.environ.get("BENCH_WEBSUB_CONCURRENCY", WebSubSettings.concurrency)),
        # The HTTPS run's receiver has a self-signed certificate: the hub trusts that one only.
        tls_ca_file=os.environ.get("BENCH_WEBSUB_CA"),
    ),
)


@streaming.subscribe("/bench/{room}")
@streaming.publish("/bench/{room}")
async def bench(event: dict[str, Any], room: str) -> dict[str, Any]:
    return event


streaming.init_app(app)
