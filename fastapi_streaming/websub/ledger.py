"""The deliveries' side of the hub's database: claim due ones, record how attempts ended.

Several worker processes share one database:

- claiming picks due rows, locks those still due with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL
  (SQLite has one writer, and the hub's transactions take its lock up front) and stamps them
  with the claim, in one transaction. A claim is a lease: a worker killed mid-attempt leaves a
  row that becomes due again when it runs out;
- a worker claims a batch in one transaction and reads each claimed event's body once, however
  many subscribers it goes to;
- outcomes are recorded in batches, one transaction for all of them, and only where the row
  still carries this worker's claim token.
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from .settings import WebSubSettings
from .sqlite_batches import SqliteBatches, database_file
from .statements import ClaimStatements, claim_statements
from .tables import DONE, FAILED, PENDING, Tables


@dataclass(frozen=True)
class Claimed:
    """A delivery this worker now owns until its claim runs out."""

    id: int
    claim: str
    attempts: int
    subscription_id: int
    callback: str
    secret: str | None
    hub_url: str
    self_url: str
    topic: str
    event_id: str
    body: bytes
    content_type: str
    quota_plan: str | None = None
    quota_key: str | None = None
    quota: str | None = None
    #: Whom usage analytics count the delivery to, and under which plan (None: a subscription
    #: made before they were recorded).
    principal: str | None = None
    plan: str | None = None


@dataclass(frozen=True)
class Failure:
    """A failed attempt: what went wrong, and a random fraction that jitters its backoff."""

    claimed: Claimed
    error: str
    fraction: float


class DeliveryLedger:
    """Claims and outcomes of deliveries; the :class:`.repository.Repository` is one."""

    settings: WebSubSettings
    engine: AsyncEngine
    tables: Tables

    @functools.cached_property
    def _statements(self) -> ClaimStatements:
        return claim_statements(self.tables)

    @functools.cached_property
    def _sqlite_batches(self) -> SqliteBatches | None:
        """On a SQLite file, claims and outcomes run each in one hop to a thread of their own
        (:mod:`.sqlite_batches`); None elsewhere."""
        if self.engine.dialect.name != "sqlite":
            return None
        path = database_file(self.engine.url)
        if path is None:
            return None
        return SqliteBatches(path, self.tables)

    async def close_ledger(self) -> None:
        """Close what claims and outcomes opened besides the engine."""
        batches = self.__dict__.pop("_sqlite_batches", None)
        if batches is not None:
            await batches.close()

    async def claim(
        self, limit: int, busy: Mapping[int, int], per_subscriber: int | None = None
    ) -> list[Claimed]:
        """Take up to ``limit`` due deliveries, oldest first, and at most ``per_subscriber``
        (default: ``per_subscriber_concurrency``) per subscription, counting the ``busy`` ones
        this worker already holds."""
        if limit <= 0:
            return []
        settings = self.settings
        statements = self._statements
        now = time.time()
        per = per_subscriber or settings.per_subscriber_concurrency
        token = str(uuid.uuid4())
        picked_params = {
            "now": now,
            "candidates": limit * 8,
            "per": per,
            "picked": limit + sum(busy.values()),
        }

        def pick(picked: Iterable[Any]) -> list[int]:
            """The ids of the picked rows still eligible once the ``busy`` ones count."""
            return [row[0] for row in picked if row[2] <= per - busy.get(row[1], 0)][:limit]

        batches = self._sqlite_batches
        if batches is not None:
            mark = {"token": token, "until": now + settings.claim_seconds}
            rows, bodies = await batches.claim(pick, picked_params, mark)
            return [_claimed(token, row, bodies[row[3]]) for row in rows]
        async with self.engine.begin() as conn:
            # Three short statements rather than one nested one: each is a walk of an index
            # whatever the planner knows about the tables (nested ``IN (SELECT ...)`` made
            # PostgreSQL scan every delivery row twice per claim).
            # The busy ones are subtracted here, not in SQL (a statement that changes with them
            # would be compiled anew on every claim). Each busy delivery rules out at most one
            # row, so this many rows hold ``limit`` eligible ones whenever there are that many.
            candidates_ids = pick(await conn.execute(statements.picked, picked_params))
            if not candidates_ids:
                return []
            ids = candidates_ids
            if conn.dialect.name != "sqlite":  # SQLite: this transaction holds the write lock
                # Lock by primary key alone (any other condition let PostgreSQL's planner walk
                # the pending rows instead) and skip rows another worker is claiming now; a row
                # another worker claimed since is read as it is now, so check it is still due.
                ids = [
                    row.id
                    for row in await conn.execute(statements.locked, {"ids": candidates_ids})
                    if row.status == PENDING and row.next_attempt_at <= now
                ]
                if not ids:
                    return []
            await conn.execute(
                statements.mark,
                {"ids": ids, "token": token, "until": now + settings.claim_seconds},
            )
            details = (await conn.execute(statements.details, {"ids": ids})).all()
            # Each event once, however many of its deliveries were claimed.
            event_pks = sorted({row.event_pk for row in details})
            bodies = {
                row[0]: tuple(row)
                for row in await conn.execute(statements.bodies, {"ids": event_pks})
            }
        return [_claimed(token, row, bodies[row.event_pk]) for row in details]

    async def succeeded(self, claimed: Claimed) -> bool:
        """Mark a delivery done; False if this worker's claim had already run out."""
        return await self._finish(claimed, status=DONE, error=None)

    async def succeeded_many(self, done: Sequence[Claimed]) -> int:
        """Mark several deliveries done in one statement; returns how many were still ours."""
        return (await self.record_outcomes(done, ()))[0]

    async def record_outcomes(
        self, done: Sequence[Claimed], failed: Sequence[Failure]
    ) -> tuple[int, int]:
        """Record a batch of outcomes in one transaction: ``done`` deliveries marked done,
        ``failed`` ones scheduled again with backoff or given up after ``max_attempts``.

        Only rows that still carry the claim of their attempt change (a row re-claimed by this
        worker since is marked done too: it was delivered either way). Returns how many of
        each were still ours.
        """
        settings = self.settings
        now = time.time()
        marked = rescheduled = 0
        retries = [item for item in failed if item.claimed.attempts < settings.max_attempts]
        give_ups = [item for item in failed if item.claimed.attempts >= settings.max_attempts]
        if not done and not failed:
            return 0, 0
        done_params = None
        if done:
            done_params = {
                "ids": [item.id for item in done],
                "claims": list({item.claim for item in done}),
                "now": now,
            }
        retry_rows = [
            {
                "row_id": item.claimed.id,
                "token": item.claimed.claim,
                "retry_at": now + settings.backoff(item.claimed.attempts, item.fraction),
                "error": item.error[:1000],
            }
            for item in retries
        ]
        give_up_rows = [
            {
                "row_id": item.claimed.id,
                "token": item.claimed.claim,
                "error": item.error[:1000],
                "now": now,
            }
            for item in give_ups
        ]
        batches = self._sqlite_batches
        if batches is not None:
            if done_params is not None:
                done_params["ids"] = json.dumps(done_params["ids"])
                done_params["claims"] = json.dumps(done_params["claims"])
            return await batches.record(done_params, retry_rows, give_up_rows)
        statements = self._statements
        async with self.engine.begin() as conn:
            if done_params is not None:
                result = await conn.execute(statements.done, done_params)
                marked = int(result.rowcount)
            if retry_rows:
                result = await conn.execute(statements.retry, _one_or_many(retry_rows))
                rescheduled += max(0, int(result.rowcount))
            if give_up_rows:
                result = await conn.execute(statements.give_up, _one_or_many(give_up_rows))
                rescheduled += max(0, int(result.rowcount))
        return marked, rescheduled

    async def failed(self, claimed: Claimed, error: str, fraction: float) -> bool:
        """Schedule the next attempt with backoff, or give up after ``max_attempts``."""
        return (await self.record_outcomes((), [Failure(claimed, error, fraction)]))[1] > 0

    async def skip(self, claimed: Claimed, reason: str) -> bool:
        """End a delivery without attempting it (its subscriber's quota is spent)."""
        return await self._finish(claimed, status=FAILED, error=reason)

    async def _finish(self, claimed: Claimed, *, status: str, error: str | None) -> bool:
        deliveries = self.tables.deliveries
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(deliveries)
                .where(deliveries.c.id == claimed.id, deliveries.c.claim == claimed.claim)
                .values(
                    status=status,
                    claim=None,
                    finished_at=time.time(),
                    last_error=None if error is None else error[:1000],
                )
            )
        return bool(result.rowcount)

    async def delivery_counts(self) -> dict[str, int]:
        """How many deliveries are in each state (for health checks and tests)."""
        deliveries = self.tables.deliveries
        async with self.engine.connect() as conn:
            result = await conn.execute(
                select(deliveries.c.status, func.count()).group_by(deliveries.c.status)
            )
            counts = {str(status): int(count) for status, count in result}
        return {state: counts.get(state, 0) for state in (PENDING, DONE, FAILED)}

    async def retry_queue_depth(self) -> int:
        """Deliveries waiting for another attempt after a failed one (every worker's)."""
        deliveries = self.tables.deliveries
        async with self.engine.connect() as conn:
            result = await conn.execute(
                select(func.count()).where(
                    deliveries.c.status == PENDING, deliveries.c.attempts > 0
                )
            )
            return int(result.scalar_one())


def _one_or_many(rows: list[dict[str, Any]]) -> dict[str, Any] | list[dict[str, Any]]:
    """One row's parameters alone, so the driver reports its row count (executemany may not)."""
    return rows[0] if len(rows) == 1 else rows


def _claimed(token: str, row: Sequence[Any], body: Sequence[Any]) -> Claimed:
    """A claimed delivery from its row of the claim's details and its event's row."""
    _, topic, event_id, content, content_type = body
    return Claimed(
        id=row[0],
        claim=token,
        attempts=row[1],
        subscription_id=row[2],
        callback=row[4],
        secret=row[5],
        hub_url=row[6],
        self_url=row[7],
        topic=topic,
        event_id=event_id,
        body=bytes(content),
        content_type=content_type,
        quota_plan=row[8],
        quota_key=row[9],
        quota=row[10],
        principal=row[11],
        plan=row[12],
    )
