"""Everything the hub keeps in its database, behind one small async API (SQLAlchemy 2 Core).

The statements are written so that several worker processes can share one database:

- recording an event is insert-or-ignore, keyed by (topic, event id) and by (subscription,
  event): every worker records every event it sees, and the database keeps one of each;
- claiming due deliveries and recording their outcomes: :mod:`.ledger`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Insert,
    MetaData,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    func,
    inspect,
    literal,
    not_,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .ledger import Claimed, DeliveryLedger, Failure
from .settings import WebSubSettings
from .sqlite import sqlite_engine
from .tables import PENDING, Tables, build_tables

__all__ = ["Claimed", "Failure", "IncomingEvent", "NewSubscription", "Repository", "make_engine"]


@dataclass(frozen=True)
class NewSubscription:
    """A subscription whose intent was just verified."""

    topic: str
    callback: str
    callback_host: str
    topic_url: str
    self_url: str
    hub_url: str
    secret: str | None
    lease_seconds: int
    verified_at: float
    #: The subscriber's plan (name, whom it counts, its quota) when its deliveries count.
    quota_plan: str | None = None
    quota_key: str | None = None
    quota: str | None = None
    #: Whom usage analytics count its deliveries to, and under which plan.
    principal: str | None = None
    plan: str | None = None


@dataclass(frozen=True)
class IncomingEvent:
    """An event of a topic as the hub received it: its id and the exact body to deliver."""

    topic: str
    event_id: str
    body: bytes
    content_type: str = "application/json"


def make_engine(url: str) -> AsyncEngine:
    """An engine tuned for the hub: see :func:`.sqlite.sqlite_engine` for SQLite."""
    if url.startswith("sqlite"):
        return sqlite_engine(url)
    return create_async_engine(url, pool_pre_ping=True)


class Repository(DeliveryLedger):
    """The hub's subscriptions, events and deliveries in one database (claims and outcomes of
    deliveries in :class:`.ledger.DeliveryLedger`)."""

    def __init__(self, settings: WebSubSettings, engine: AsyncEngine | None = None) -> None:
        self.settings = settings
        self.engine = engine or make_engine(settings.database_url)
        self.tables: Tables = build_tables(settings.table_prefix)
        self.dialect = self.engine.dialect.name

    def _insert(self, table: Any) -> Any:
        """An INSERT that can say ON CONFLICT DO NOTHING / DO UPDATE in this database's dialect."""
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        if self.dialect == "sqlite":
            return sqlite.insert(table)
        raise RuntimeError(f"The WebSub hub supports SQLite and PostgreSQL, not {self.dialect}.")

    # -- schema ------------------------------------------------------------------------------

    async def create_schema(self) -> None:
        """Create missing tables and indexes; safe when several processes start at once.

        PostgreSQL serializes the creators with an advisory lock. SQLite runs DDL outside
        transactions, so a creator may find that another one just made a table: it tries
        again, and creates each index on its own so none is skipped along with its table.
        """
        for attempt in range(10):
            try:
                async with self.engine.begin() as conn:
                    if self.dialect == "postgresql":
                        lock = text("SELECT pg_advisory_xact_lock(hashtext(:key))")
                        await conn.execute(lock, {"key": "websub:" + self.settings.table_prefix})
                    await conn.run_sync(_create_all, self.tables.metadata)
                return
            except OperationalError:  # SQLite: another process created something meanwhile
                if attempt == 9:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))

    async def drop_schema(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(self.tables.metadata.drop_all)

    async def close(self) -> None:
        try:
            await self.close_ledger()
        finally:
            await self.engine.dispose()

    # -- subscriptions -----------------------------------------------------------------------

    async def save_subscription(self, new: NewSubscription) -> None:
        """Create or renew the subscription of (topic, callback): the spec's override rule."""
        table = self.tables.subscriptions
        values = {
            "topic": new.topic,
            "callback": new.callback,
            "callback_host": new.callback_host,
            "topic_url": new.topic_url,
            "self_url": new.self_url,
            "hub_url": new.hub_url,
            "secret": new.secret,
            "lease_seconds": new.lease_seconds,
            "created_at": new.verified_at,
            "verified_at": new.verified_at,
            "expires_at": new.verified_at + new.lease_seconds,
            "quota_plan": new.quota_plan,
            "quota_key": new.quota_key,
            "quota": new.quota,
            "principal": new.principal,
            "plan": new.plan,
        }
        statement = self._insert(table).values(**values)
        changed = {k: v for k, v in values.items() if k not in ("topic", "callback", "created_at")}
        statement = statement.on_conflict_do_update(
            index_elements=["topic", "callback"], set_=changed
        )
        async with self.engine.begin() as conn:
            await conn.execute(statement)

    async def remove_subscription(self, topic: str, callback: str) -> bool:
        subs = self.tables.subscriptions
        async with self.engine.begin() as conn:
            found = await conn.scalar(
                select(subs.c.id).where(subs.c.topic == topic, subs.c.callback == callback)
            )
            if found is None:
                return False
            await self._delete_subscriptions(conn, [found])
        return True

    async def remove_subscription_by_id(self, subscription_id: int) -> None:
        async with self.engine.begin() as conn:
            await self._delete_subscriptions(conn, [subscription_id])

    async def _delete_subscriptions(self, conn: Any, ids: Sequence[int]) -> None:
        deliveries, subs = self.tables.deliveries, self.tables.subscriptions
        await conn.execute(delete(deliveries).where(deliveries.c.subscription_id.in_(ids)))
        await conn.execute(delete(subs).where(subs.c.id.in_(ids)))

    async def subscription(self, topic: str, callback: str) -> Mapping[str, Any] | None:
        subs = self.tables.subscriptions
        async with self.engine.connect() as conn:
            result = await conn.execute(
                select(subs).where(subs.c.topic == topic, subs.c.callback == callback)
            )
            row = result.first()
        return None if row is None else dict(row._mapping)

    async def count_others(self, *, topic: str, callback: str, host: str) -> tuple[int, int]:
        """Live subscriptions of ``topic`` and of callback ``host``, not counting this one."""
        subs = self.tables.subscriptions
        now = time.time()
        not_this = not_(and_(subs.c.topic == topic, subs.c.callback == callback))
        live = subs.c.expires_at > now
        async with self.engine.connect() as conn:
            on_topic = await conn.scalar(
                select(func.count()).where(subs.c.topic == topic, live, not_this)
            )
            on_host = await conn.scalar(
                select(func.count()).where(subs.c.callback_host == host, live, not_this)
            )
        return int(on_topic or 0), int(on_host or 0)

    async def live_topics(self) -> set[str]:
        """The topic addresses that have at least one unexpired subscription."""
        subs = self.tables.subscriptions
        async with self.engine.connect() as conn:
            result = await conn.execute(
                select(subs.c.topic).where(subs.c.expires_at > time.time()).distinct()
            )
            return {row[0] for row in result}

    # -- events ------------------------------------------------------------------------------

    async def record(self, incoming: Sequence[IncomingEvent]) -> None:
        """Record events and one pending delivery per live subscription of their topic.

        Idempotent: a worker that records an event another worker already recorded changes
        nothing, which is what makes delivery exactly once per subscriber across workers.
        """
        if not incoming:
            return
        events, deliveries, subs = (
            self.tables.events,
            self.tables.deliveries,
            self.tables.subscriptions,
        )
        now = time.time()
        add_events = self._insert(events).on_conflict_do_nothing(
            index_elements=["topic", "event_id"]
        )
        event_pk = (
            select(events.c.id)
            .where(events.c.topic == bindparam("t"), events.c.event_id == bindparam("e"))
            .scalar_subquery()
        )
        targets = (
            select(
                subs.c.id,
                event_pk,
                literal(PENDING),
                literal(0),
                literal(now),
                literal(now),
            )
            .where(subs.c.topic == bindparam("t"), subs.c.expires_at > now)
            .order_by(subs.c.id)
        )
        add_deliveries: Insert = (
            self._insert(deliveries)
            .from_select(
                [
                    "subscription_id",
                    "event_pk",
                    "status",
                    "attempts",
                    "next_attempt_at",
                    "created_at",
                ],
                targets,
            )
            .on_conflict_do_nothing(index_elements=["subscription_id", "event_pk"])
        )
        async with self.engine.begin() as conn:
            await conn.execute(
                add_events,
                [
                    {
                        "topic": item.topic,
                        "event_id": item.event_id,
                        "content_type": item.content_type,
                        "body": item.body,
                        "created_at": now,
                    }
                    for item in incoming
                ],
            )
            await conn.execute(
                add_deliveries, [{"t": item.topic, "e": item.event_id} for item in incoming]
            )

    async def latest_event(self, topic: str) -> tuple[bytes, str] | None:
        events = self.tables.events
        async with self.engine.connect() as conn:
            result = await conn.execute(
                select(events.c.body, events.c.content_type)
                .where(events.c.topic == topic)
                .order_by(events.c.id.desc())
                .limit(1)
            )
            row = result.first()
        return None if row is None else (bytes(row[0]), str(row[1]))

    async def cleanup(self) -> None:
        """Remove expired subscriptions, and deliveries and events older than the retention."""
        subs, deliveries, events = (
            self.tables.subscriptions,
            self.tables.deliveries,
            self.tables.events,
        )
        now = time.time()
        horizon = now - self.settings.retention
        async with self.engine.begin() as conn:
            expired = [
                row[0]
                for row in await conn.execute(select(subs.c.id).where(subs.c.expires_at <= now))
            ]
            for chunk in _chunks(expired, 500):
                await self._delete_subscriptions(conn, chunk)
            await conn.execute(
                delete(deliveries).where(
                    deliveries.c.status != PENDING, deliveries.c.finished_at < horizon
                )
            )
            used = exists().where(deliveries.c.event_pk == events.c.id)
            await conn.execute(delete(events).where(events.c.created_at < horizon, not_(used)))


def _create_all(connection: Connection, metadata: MetaData) -> None:
    metadata.create_all(connection)
    for table in metadata.sorted_tables:
        for index in table.indexes:
            index.create(connection, checkfirst=True)
        _add_missing_columns(connection, table)


def _add_missing_columns(connection: Connection, table: Table) -> None:
    """Tables made by an older release lack newer (nullable) columns: add them."""
    present = {column["name"] for column in inspect(connection).get_columns(table.name)}
    for column in table.columns:
        if column.name not in present:
            kind = column.type.compile(dialect=connection.dialect)
            connection.exec_driver_sql(
                f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}'
            )


def _chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
