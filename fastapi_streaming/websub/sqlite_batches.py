"""Claims and outcomes on SQLite, each transaction in one hop to a database thread.

Through SQLAlchemy and aiosqlite, every statement of a transaction goes to aiosqlite's thread
and back several times (cursor, execute, fetch, close; ``BEGIN``, ``COMMIT``): a claim took
about twenty round trips between the event loop and that thread, and waking one side from the
other, with the compiled statements' parameter processing, cost the hub as much CPU as sending
the deliveries. Here a claim or a batch of outcomes is one function that runs whole on a thread
of its own, on a standard-library connection, with the same statements (compiled once from the
ledger's, lists of ids passed as one JSON array) in the same ``BEGIN IMMEDIATE`` transaction:
the event loop hands it over and is woken once, when it committed.

The connection is the hub's own, opened like the engine's (WAL, ``busy_timeout``); SQLite
serializes it with every other connection of every worker, as before.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import ClauseElement, ColumnElement, bindparam, column, func, select
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import URL

from .statements import claim_statements
from .tables import Tables

T = TypeVar("T")

#: The claimed rows' details and their events' bodies, as the claim reads them.
DetailRow = tuple[int, int, int, int, str, str | None, str, str, Any, Any, Any, Any, Any]
BodyRow = tuple[int, str, str, bytes, str]

_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA busy_timeout=30000")


def database_file(url: URL) -> str | None:
    """The file of a SQLite URL that names a plain file; None for an in-memory database (only
    the engine's own connection sees that one) or a URL with options (``file:`` URIs and the
    like), which keep the engine's path."""
    name = url.database
    if not name or name == ":memory:" or name.startswith("file:") or url.query:
        return None
    return name


class SqliteBatches:
    """Runs claims and outcome batches on one thread with one connection to ``path``."""

    def __init__(self, path: str, tables: Tables) -> None:
        self.path = path
        self._sql = _Statements(tables)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="websub-sqlite")
        self._connection: sqlite3.Connection | None = None

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def claim(
        self,
        pick: Callable[[list[tuple[int, int, int]]], list[int]],
        picked: Mapping[str, Any],
        mark: Mapping[str, Any],
    ) -> tuple[list[DetailRow], dict[int, BodyRow]]:
        """Pick due rows with ``picked``'s parameters, keep those ``pick`` chooses from (id,
        subscription, position), stamp them with ``mark``'s claim; their details and bodies."""
        return await self._run(self._claim, pick, picked, mark)

    async def record(
        self,
        done: Mapping[str, Any] | None,
        retries: list[dict[str, Any]],
        give_ups: list[dict[str, Any]],
    ) -> tuple[int, int]:
        """Mark ``done`` ones done, reschedule ``retries``, give up ``give_ups``, in one
        transaction; how many done ones and how many others still carried their claim."""
        return await self._run(self._record, done, retries, give_ups)

    async def close(self) -> None:
        """Close the connection once what was handed over ran, then end the thread."""
        try:
            await self._run(self._close)
        finally:
            self._executor.shutdown(wait=False)

    # -- on the database thread ------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        connection = self._connection
        if connection is None:
            # isolation_level None: no implicit transactions; each one says BEGIN IMMEDIATE.
            connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            for pragma in _PRAGMAS:
                connection.execute(pragma)
            self._connection = connection
        return connection

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        connection = self._connect()
        connection.execute("BEGIN IMMEDIATE")
        try:
            result = work(connection)
            connection.execute("COMMIT")
        except BaseException:
            # A failed statement or commit must not leave the connection inside a transaction
            # (every later BEGIN would fail); SQLite may already have rolled back by itself.
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        return result

    def _claim(
        self,
        pick: Callable[[list[tuple[int, int, int]]], list[int]],
        picked: Mapping[str, Any],
        mark: Mapping[str, Any],
    ) -> tuple[list[DetailRow], dict[int, BodyRow]]:
        sql = self._sql

        def work(connection: sqlite3.Connection) -> tuple[list[DetailRow], dict[int, BodyRow]]:
            due = connection.execute(sql.picked.text, sql.picked.bind(picked)).fetchall()
            ids = pick(due)
            if not ids:
                return [], {}
            listed = json.dumps(ids)
            connection.execute(sql.mark.text, sql.mark.bind({**mark, "ids": listed}))
            rows: list[DetailRow] = connection.execute(
                sql.details.text, sql.details.bind({"ids": listed})
            ).fetchall()
            event_pks = json.dumps(sorted({row[3] for row in rows}))
            bodies = connection.execute(sql.bodies.text, sql.bodies.bind({"ids": event_pks}))
            return rows, {row[0]: row for row in bodies}

        return self._transaction(work)

    def _record(
        self,
        done: Mapping[str, Any] | None,
        retries: list[dict[str, Any]],
        give_ups: list[dict[str, Any]],
    ) -> tuple[int, int]:
        sql = self._sql

        def work(connection: sqlite3.Connection) -> tuple[int, int]:
            marked = rescheduled = 0
            if done is not None:
                marked = connection.execute(sql.done.text, sql.done.bind(done)).rowcount
            if retries:
                rows = [sql.retry.bind(row) for row in retries]
                rescheduled += connection.executemany(sql.retry.text, rows).rowcount
            if give_ups:
                rows = [sql.give_up.bind(row) for row in give_ups]
                rescheduled += connection.executemany(sql.give_up.text, rows).rowcount
            return marked, max(0, rescheduled)

        return self._transaction(work)


class _Statements:
    """The ledger's statements (:func:`.statements.claim_statements`) as SQLite text with
    named parameters, compiled once; a list of ids or claims is one JSON array parameter
    (``IN (SELECT value FROM json_each(:ids))``), so the text does not change with its length."""

    def __init__(self, tables: Tables) -> None:
        built = claim_statements(tables, ids=_json_list("ids"), claims=_json_list("claims"))
        self.picked = _compile(built.picked)
        self.mark = _compile(built.mark)
        self.details = _compile(built.details)
        self.bodies = _compile(built.bodies)
        self.done = _compile(built.done)
        self.retry = _compile(built.retry)
        self.give_up = _compile(built.give_up)


def _json_list(name: str) -> ColumnElement[Any]:
    """The values of the JSON array parameter ``name``, for ``IN``."""
    return select(column("value")).select_from(func.json_each(bindparam(name))).scalar_subquery()


class _Sql(NamedTuple):
    """A statement's SQLite text with ``:name`` parameters, and the values of its literals."""

    text: str
    defaults: dict[str, Any]

    def bind(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {**self.defaults, **values}


def _compile(statement: ClauseElement) -> _Sql:
    compiled = statement.compile(dialect=sqlite_dialect.dialect(paramstyle="named"))
    return _Sql(str(compiled), dict(compiled.params))
