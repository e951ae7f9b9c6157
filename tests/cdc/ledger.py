"""Checking what a client got from a table topic with a snapshot: every change exactly once.

The tables of these tests have a counter column ``n`` that starts at 0 on insert and that every
update raises by exactly 1. So a client's events, replayed in order, must show each row once
(a snapshot row ``op: r`` or an insert ``op: c``), then its updates with ``n`` rising by one
each time: a change missed at the snapshot's boundary breaks the sequence, and so does one
delivered twice (in the snapshot and live).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any


def replay(changes: Iterable[dict[str, Any]]) -> dict[Any, int]:
    """The rows' counters after ``changes``; fails on a gap, a duplicate or a row out of order."""
    state: dict[Any, int] = {}
    live = False
    for number, change in enumerate(changes):
        op, row = change["op"], change["after"]
        key = row["id"]
        where = f"event {number} ({op} of row {key})"
        if op == "r":
            assert not live, f"{where}: a snapshot row after live changes"
            assert change["source"]["snapshot"] is True, where
            assert key not in state, f"{where}: the row is in the snapshot twice"
        elif op == "c":
            live = True
            assert key not in state, f"{where}: inserted twice (snapshot and live?)"
            assert row["n"] == 0, where
        elif op == "u":
            live = True
            assert key in state, f"{where}: an update of a row never seen"
            assert row["n"] == state[key] + 1, (
                f"{where}: n went from {state[key]} to {row['n']}: "
                + ("a duplicate" if row["n"] <= state[key] else "a missed change")
            )
        else:
            raise AssertionError(f"{where}: unexpected op")
        state[key] = row["n"]
    return state


class Writer(threading.Thread):
    """Inserts and updates rows, one short transaction at a time, until stopped.

    ``execute(statement)`` runs one statement in its own transaction on a connection of the
    thread's own; ``connect()`` makes that connection.
    """

    def __init__(self, table: str, connect: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.table = table
        self.connect = connect
        self.stop_event = threading.Event()
        self.count = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            connection = self.connect()
            cursor = connection.cursor()
            while not self.stop_event.is_set():
                if self.count % 3 == 0:
                    cursor.execute(
                        f"INSERT INTO {self.table} (customer_id, n) VALUES ({self.count % 4}, 0)"
                    )
                else:  # one of the newest rows, or an old one
                    cursor.execute(
                        f"UPDATE {self.table} SET n = n + 1 WHERE id = (SELECT top FROM "
                        f"(SELECT max(id) AS top FROM {self.table}) AS newest) - "
                        f"{self.count % 7 * 13}"
                    )
                self.count += 1
            connection.close()
        except BaseException as exc:
            self.error = exc
