"""The hub's three tables, named with a configurable prefix.

- ``subscriptions``: verified subscriptions only (a pending request lives in the process that
  verifies it). One row per (topic address, callback), as the spec's override rule wants.
- ``events``: each event once, whichever worker recorded it first, with its exact body.
- ``deliveries``: one row per (subscription, event). The unique constraint is what makes
  delivery exactly once per subscriber when several worker processes record the same event.

Times are Unix seconds as floats: the same on SQLite and PostgreSQL, no time zones to mix up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

#: SQLite only auto-increments a column declared exactly ``INTEGER PRIMARY KEY``.
BigId = BigInteger().with_variant(Integer(), "sqlite")

PENDING = "pending"
DONE = "done"
FAILED = "failed"


def quota_columns() -> list[Column[Any]]:
    """Columns added after the first release: created with the table, or added to an older
    one by ``Repository.create_schema``."""
    return [
        Column("quota_plan", String(64)),
        Column("quota_key", String(255)),
        Column("quota", String(64)),
        # Set while an administrator has paused the subscription: nothing is delivered, events
        # keep being recorded for it and go out, oldest first, once it resumes.
        Column("paused_at", Float),
        # Whom usage analytics count its deliveries to, and under which plan (as a connection
        # of the subscriber would be counted); empty on subscriptions made before they were.
        Column("principal", String(255)),
        Column("plan", String(64)),
    ]


@dataclass(frozen=True)
class Tables:
    metadata: MetaData
    subscriptions: Table
    events: Table
    deliveries: Table


def build_tables(prefix: str = "websub_") -> Tables:
    """The table definitions, each in a fresh ``MetaData`` so prefixes never collide."""
    metadata = MetaData()
    subscriptions = Table(
        f"{prefix}subscriptions",
        metadata,
        Column("id", BigId, primary_key=True, autoincrement=True),
        Column("topic", String(2048), nullable=False),
        Column("callback", String(2048), nullable=False),
        Column("callback_host", String(255), nullable=False),
        Column("topic_url", Text, nullable=False),
        Column("self_url", Text, nullable=False),
        Column("hub_url", Text, nullable=False),
        Column("secret", String(255)),
        Column("lease_seconds", Integer, nullable=False),
        Column("created_at", Float, nullable=False),
        Column("verified_at", Float, nullable=False),
        Column("expires_at", Float, nullable=False),
        # The subscriber's plan quota, when one applies: its deliveries count against it.
        *quota_columns(),
        UniqueConstraint("topic", "callback", name=f"{prefix}subscriptions_topic_callback"),
        Index(f"{prefix}subscriptions_expiry", "topic", "expires_at"),
        Index(f"{prefix}subscriptions_host", "callback_host"),
    )
    events = Table(
        f"{prefix}events",
        metadata,
        Column("id", BigId, primary_key=True, autoincrement=True),
        Column("topic", String(2048), nullable=False),
        Column("event_id", String(255), nullable=False),
        Column("content_type", String(255), nullable=False),
        Column("body", LargeBinary, nullable=False),
        Column("created_at", Float, nullable=False),
        UniqueConstraint("topic", "event_id", name=f"{prefix}events_topic_event"),
        Index(f"{prefix}events_created", "created_at"),
    )
    deliveries = Table(
        f"{prefix}deliveries",
        metadata,
        Column("id", BigId, primary_key=True, autoincrement=True),
        Column("subscription_id", BigInteger, nullable=False),
        Column("event_pk", BigInteger, nullable=False),
        Column("status", String(10), nullable=False, default=PENDING),
        Column("attempts", Integer, nullable=False, default=0),
        Column("next_attempt_at", Float, nullable=False),
        Column("claim", String(36)),
        Column("last_error", Text),
        Column("created_at", Float, nullable=False),
        Column("finished_at", Float),
        UniqueConstraint("subscription_id", "event_pk", name=f"{prefix}deliveries_once"),
        # Claims read due rows in (next_attempt_at, id) order straight off this index and stop
        # after a batch, instead of sorting every pending row on every claim.
        Index(f"{prefix}deliveries_next", "status", "next_attempt_at", "id"),
        Index(f"{prefix}deliveries_event", "event_pk"),
    )
    return Tables(metadata, subscriptions, events, deliveries)
