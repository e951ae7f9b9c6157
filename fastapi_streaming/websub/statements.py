"""The statements of a ledger's claims and outcomes, built once: building and keying SQLAlchemy
statements anew for every batch cost more CPU than running them.

Shared by the ledger (through SQLAlchemy, on every database) and by SQLite's one-hop path
(:mod:`.sqlite_batches`, compiled to text once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Integer,
    Select,
    Update,
    bindparam,
    func,
    select,
    update,
)

from .tables import DONE, FAILED, PENDING, Tables


@dataclass(frozen=True)
class ClaimStatements:
    """The statements of claims and of successes, built once per ledger: building and keying
    SQLAlchemy statements anew for every batch cost more CPU than running them. Values are
    bound parameters."""

    picked: Select[Any]
    locked: Select[Any]
    mark: Update
    #: Delivered ones marked done, where they still carry one of the given claims.
    done: Update
    #: A failed one scheduled again, or given up, where it still carries its claim.
    retry: Update
    give_up: Update
    details: Select[Any]
    bodies: Select[Any]


def claim_statements(
    tables: Tables, ids: ColumnElement[Any] | None = None, claims: ColumnElement[Any] | None = None
) -> ClaimStatements:
    """The statements over ``tables``. A list of delivery ids or of claims is an expanding
    parameter (``ids``, ``claims``) unless other expressions are given: SQLite's one-hop path
    passes each list as one JSON array, so its compiled text does not change with the length."""
    deliveries, subs, events = tables.deliveries, tables.subscriptions, tables.events
    now: BindParameter[float] = bindparam("now")
    if ids is None:
        ids = bindparam("ids", expanding=True)
    if claims is None:
        claims = bindparam("claims", expanding=True)
    due = deliveries.alias("due")
    live = select(subs.c.id).where(subs.c.expires_at > now, subs.c.paused_at.is_(None))
    candidates = (
        select(due.c.id, due.c.subscription_id, due.c.next_attempt_at)
        .where(
            due.c.status == PENDING,
            due.c.next_attempt_at <= now,
            due.c.subscription_id.in_(live),
        )
        .order_by(due.c.next_attempt_at, due.c.id)
        .limit(bindparam("candidates", type_=Integer))
        .subquery("candidates")
    )
    rank = func.row_number().over(
        partition_by=candidates.c.subscription_id,
        order_by=(candidates.c.next_attempt_at, candidates.c.id),
    )
    ranked = select(
        candidates.c.id,
        candidates.c.subscription_id,
        candidates.c.next_attempt_at,
        rank.label("position"),
    ).subquery("ranked")
    picked = (
        select(ranked.c.id, ranked.c.subscription_id, ranked.c.position)
        .where(ranked.c.position <= bindparam("per", type_=Integer))
        .order_by(ranked.c.next_attempt_at, ranked.c.id)
        .limit(bindparam("picked", type_=Integer))
    )
    locked = (
        select(deliveries.c.id, deliveries.c.status, deliveries.c.next_attempt_at)
        .where(deliveries.c.id.in_(ids))
        .with_for_update(skip_locked=True)
    )
    mark = (
        update(deliveries)
        .where(deliveries.c.id.in_(ids))
        .values(
            claim=bindparam("token"),
            attempts=deliveries.c.attempts + 1,
            next_attempt_at=bindparam("until"),
        )
    )
    done = (
        update(deliveries)
        .where(deliveries.c.id.in_(ids), deliveries.c.claim.in_(claims))
        .values(status=DONE, claim=None, finished_at=bindparam("now"), last_error=None)
    )
    details = (
        select(
            deliveries.c.id,
            deliveries.c.attempts,
            deliveries.c.subscription_id,
            deliveries.c.event_pk,
            subs.c.callback,
            subs.c.secret,
            subs.c.hub_url,
            subs.c.self_url,
            subs.c.quota_plan,
            subs.c.quota_key,
            subs.c.quota,
            subs.c.principal,
            subs.c.plan,
        )
        .join(subs, subs.c.id == deliveries.c.subscription_id)
        .where(deliveries.c.id.in_(ids))
        .order_by(deliveries.c.id)
    )
    bodies = select(
        events.c.id, events.c.topic, events.c.event_id, events.c.body, events.c.content_type
    ).where(events.c.id.in_(ids))
    mine = (deliveries.c.id == bindparam("row_id")) & (deliveries.c.claim == bindparam("token"))
    retry = (
        update(deliveries)
        .where(mine)
        .values(claim=None, next_attempt_at=bindparam("retry_at"), last_error=bindparam("error"))
    )
    give_up = (
        update(deliveries)
        .where(mine)
        .values(
            status=FAILED, claim=None, finished_at=bindparam("now"), last_error=bindparam("error")
        )
    )
    return ClaimStatements(picked, locked, mark, done, retry, give_up, details, bodies)
