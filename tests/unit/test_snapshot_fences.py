"""The database-free parts of client snapshots: each source's fence, MariaDB's column labels,
and the gate that holds a client's live events while its rows are sent."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from broadcaster import Event as BrokerMessage

from fastapi_streaming.cdc.mysqlcolumns import ColumnLabels
from fastapi_streaming.cdc.mysqlsnapshot import MySQLSnapshot, binlog_order
from fastapi_streaming.cdc.pgsnapshot import PostgresSnapshot
from fastapi_streaming.events import EncodedEvent, Event, decode_message
from fastapi_streaming.fanout import ClientQueue, TopicStream
from fastapi_streaming.replay import ReplayBuffers
from fastapi_streaming.snapshots import SnapshotGate
from fastapi_streaming.topics import OverflowPolicy


def postgres_snapshot(xmin: int, xmax: int, running: set[int]) -> PostgresSnapshot:
    snapshot = PostgresSnapshot(connection=None, name="slot")
    snapshot.xmin, snapshot.xmax, snapshot.in_progress = xmin, xmax, frozenset(running)
    return snapshot


def test_a_postgres_change_is_covered_when_its_transaction_is_visible() -> None:
    snapshot = postgres_snapshot(100, 110, {100, 104})
    assert snapshot.covers("99") and snapshot.covers("103")  # committed before
    assert not snapshot.covers("100") and not snapshot.covers("104")  # running then
    assert not snapshot.covers("110") and not snapshot.covers("120")  # began after
    assert not snapshot.covers(None)
    assert [snapshot.passed(x) for x in ("104", "109", "110")] == [False, False, True]


def test_transaction_ids_of_changes_are_read_in_the_snapshots_epoch() -> None:
    epoch = 3 << 32
    snapshot = postgres_snapshot(epoch + 5, epoch + 9, set())
    assert snapshot.covers(str(7))  # 32-bit id 7 is epoch + 7
    wrapped = postgres_snapshot(epoch - 3, epoch + 2, set())
    assert snapshot.covers(str(2**32 - 5))  # the epoch before: committed long ago
    assert wrapped.covers(str(2**32 - 5))  # just before the wrap: visible
    assert not wrapped.covers("2") and wrapped.passed("2")


def test_captures_own_snapshot_rows_are_covered_only_by_a_later_snapshot() -> None:
    client = postgres_snapshot(100, 110, {104})
    assert client.covers("snapshot:90:100:95")  # everything visible then is visible now
    assert client.covers("snapshot:100:105:104")  # 104 was running then too
    assert not client.covers("snapshot:100:105:")  # 104 visible then, running now
    assert not client.covers("snapshot:100:120:")  # taken after this one
    assert not client.covers("snapshot:garbage")


def test_a_binlog_fence_compares_file_numbers_then_positions() -> None:
    assert binlog_order("mariadb-bin.000012:4567") == (12, 4567)
    assert binlog_order("no-number:1") is None
    snapshot = MySQLSnapshot(connection=None, name="orders")
    snapshot._fence = (12, 4567)
    assert snapshot.covers("mariadb-bin.000012:4567") and snapshot.covers("mariadb-bin.000011:9")
    assert not snapshot.covers("mariadb-bin.000012:4568")
    assert snapshot.passed("mariadb-bin.000013:4") and not snapshot.passed("x")


def test_column_labels_follow_an_alter_table_and_never_guess_on_a_count_mismatch() -> None:
    definitions = [["id", "amount", "tag"]]
    labels = ColumnLabels(
        "shop.orders", ["id", "item", "amount"], lambda: definitions[0], named_events=False
    )
    assert labels.label({"UNKNOWN_COL0": 1, "UNKNOWN_COL1": "a", "UNKNOWN_COL2": 2}) == (
        {"id": 1, "item": "a", "amount": 2},
        False,
    )
    assert not labels.statement("ALTER TABLE other DROP COLUMN item")
    assert labels.statement("alter table `shop`.`orders` drop column item, add tag text")
    row, changed = labels.label({"UNKNOWN_COL0": 2, "UNKNOWN_COL1": 3, "UNKNOWN_COL2": "t"})
    assert (row, changed) == ({"id": 2, "amount": 3, "tag": "t"}, False)
    row, changed = labels.label({"UNKNOWN_COL0": 3, "UNKNOWN_COL1": 4})  # the table has 3
    assert row == {"UNKNOWN_COL0": 3, "UNKNOWN_COL1": 4}


def test_named_events_label_their_own_values() -> None:
    labels = ColumnLabels("shop.orders", ["id", "item"], lambda: [], named_events=True)
    assert labels.label({"id": 1, "note": "n"}) == ({"id": 1, "note": "n"}, True)
    assert labels.label({"id": 2, "note": "m"}) == ({"id": 2, "note": "m"}, False)


class Rows:
    """A client snapshot of known rows and a fence at position 10."""

    def __init__(self, rows: list[int]) -> None:
        self.rows = rows
        self.closed = False

    async def batches(self) -> AsyncIterator[list[tuple[str, str]]]:
        for row in self.rows:
            event = Event(id=f"row-{row}", topic="/t", time="t", data={"op": "r", "n": row})
            yield [("t", event.to_message())]

    def covers(self, position: str | None) -> bool:
        return position is not None and int(position) <= 10

    def passed(self, position: str | None) -> bool:
        return position is not None and int(position) > 10

    async def close(self) -> None:
        self.closed = True


def live(position: int) -> EncodedEvent:
    event = Event(id=f"live-{position}", topic="/t", time="t", data={}, position=str(position))
    return EncodedEvent(event, b"{}")


async def prepare(message: BrokerMessage) -> EncodedEvent | None:
    event = decode_message(message.message, topic="/t", channel=message.channel)
    return EncodedEvent(event, b"{}")


async def test_the_gate_sends_rows_then_held_changes_past_the_fence_then_steps_aside() -> None:
    queue = ClientQueue(2, "test")  # smaller than the snapshot: rows wait for the reader
    stream = TopicStream("/t", "t", prepare, OverflowPolicy.DISCONNECT, ReplayBuffers())
    gate = SnapshotGate(queue, OverflowPolicy.DISCONNECT)
    stream.clients.add(gate)
    stream.gates[queue] = gate
    for position in (9, 11):  # arrive before the rows are read
        gate.put(live(position), OverflowPolicy.DISCONNECT)
    rows = Rows([1, 2, 3])
    gate.start(stream, rows, prepare)
    received: list[str] = []
    while len(received) < 4:
        await queue.wait(5)
        received += [item.event.id for item in queue.take() if isinstance(item, EncodedEvent)]
        await asyncio.sleep(0)
    assert received == ["row-1", "row-2", "row-3", "live-11"]  # live-9: in the rows already
    assert rows.closed
    assert stream.clients == {queue} and not stream.gates  # past the fence: a plain client
    queue.put(live(12), OverflowPolicy.DISCONNECT)
    assert [item.event.id for item in queue.take() if isinstance(item, EncodedEvent)] == ["live-12"]


async def test_a_client_that_leaves_stops_its_snapshot() -> None:
    queue = ClientQueue(1, "test")
    stream = TopicStream("/t", "t", prepare, OverflowPolicy.DISCONNECT, ReplayBuffers())
    gate = SnapshotGate(queue, OverflowPolicy.DISCONNECT)
    rows = Rows(list(range(100)))
    gate.start(stream, rows, prepare)
    assert await queue.wait(10)  # the first row waits in the queue: nobody reads
    gate.close()
    task = gate._task
    assert task is not None
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert rows.closed and len(queue) == 1


def test_events_carry_their_source_position_through_the_broker() -> None:
    event = Event(id="1", topic="/t", time="t", data={"a": 1}, position="771")
    decoded = decode_message(event.to_message(), topic="/t", channel="t")
    assert decoded.position == "771"
    plain = decode_message(
        Event(id="2", topic="/t", time="t", data=1).to_message(), topic="/t", channel="t"
    )
    assert plain.position is None
