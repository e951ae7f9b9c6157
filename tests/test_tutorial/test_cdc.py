"""docs_src/cdc/app.py, the change data capture tutorial, on a real server and database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support.cdc import drop_capture, execute, logical_wal_or_skip
from tests.support.clients import sse_stream
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.postgres, pytest.mark.cdc]


@pytest.fixture
def database_url() -> Iterator[str]:
    """A database of its own, so the tutorial's fixed table and slot names meet nobody."""
    logical_wal_or_skip()
    name = f"app_{uuid.uuid4().hex[:10]}"
    execute(f"CREATE DATABASE {name}")
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        yield url
    finally:
        drop_capture("fastapi_streaming_public_todos", dsn=url)
        execute(f"DROP DATABASE {name}")


async def streaming_started(url: str, timeout: float = 20) -> None:
    async with httpx.AsyncClient(base_url=url) as http:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            (source,) = (await http.get("/streams/health")).json()["sources"].values()
            if source["streaming"]:
                return
            assert asyncio.get_running_loop().time() < deadline, source
            await asyncio.sleep(0.1)


async def test_an_insert_reaches_an_sse_client(database_url: str) -> None:
    with ServerProcess("docs_src.cdc.app:app", env={"DATABASE_URL": database_url}) as server:
        await streaming_started(server.url)  # else the row would come as a snapshot row
        async with sse_stream(server.url, "/streams/sse/tables/todos") as client:
            execute("INSERT INTO todos (task) VALUES ('water the plants')", dsn=database_url)
            (event,) = await client.wait_for(1, timeout=20)
        async with httpx.AsyncClient(base_url=server.url) as http:
            document = (await http.get("/asyncapi.json")).json()
            health = (await http.get("/streams/health")).json()

    change = event.json()
    assert change["op"] == "c"
    assert change["before"] is None
    assert change["after"] == {"id": 1, "task": "water the plants", "done": False}
    assert change["source"]["table"] == "todos"
    assert event.id

    (channel,) = document["channels"].values()
    assert channel["address"] == "/tables/todos"
    (operation,) = document["operations"].values()
    assert operation["action"] == "send"  # subscribe only: the app sends, clients receive
    assert "security" not in operation
    row = document["components"]["schemas"]["TodosRow"]
    assert list(row["properties"]) == ["id", "task", "done"]
    (source,) = health["sources"].values()
    assert source["state"] == "capturing" and source["table"] == "public.todos"


def test_the_other_examples_declare_their_table_topics() -> None:
    from docs_src.cdc import debezium_app, mysql_app, orders

    topic = orders.streaming.topics.get("/tables/orders/{customer_id}")
    assert topic is not None and topic.subscribe is not None
    assert topic.subscribe.scopes == ("orders:read",)
    assert topic.subscribe.description == "Orders, each on the channel of its customer."
    assert mysql_app.streaming.topics.get("/tables/orders") is not None
    assert debezium_app.streaming.topics.get("/tables/customers") is not None
    assert len(orders.streaming.producers) == 1
