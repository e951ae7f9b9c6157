"""What an administrator sees of and does to the hub's subscriptions (the console uses it).

Reads and writes the shared database, so every worker process sees the same state: a
subscription paused through one worker gets no deliveries from any.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, delete, func, select, update

from .repository import Repository
from .tables import DONE, FAILED, PENDING

ACTIVE = "active"
PAUSED = "paused"
EXPIRED = "expired"


@dataclass(frozen=True)
class SubscriptionState:
    """One subscription as the console shows it."""

    id: int
    topic: str
    callback: str
    state: str
    expires_at: float
    #: When an attempt last succeeded (None: never).
    last_delivery: float | None
    #: Deliveries waiting for their first attempt.
    queued: int
    #: Deliveries that failed at least once and wait for another attempt (the retry queue).
    retrying: int
    #: Deliveries given up on (attempts ran out, or over the subscriber's quota).
    failed: int
    #: The error of the delivery that failed last, if any is still waiting or given up.
    last_error: str | None
    #: Whom its deliveries count to (None: made before principals were recorded).
    principal: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "topic": self.topic,
            "callback": self.callback,
            "state": self.state,
            "expires_at": self.expires_at,
            "last_delivery": self.last_delivery,
            "queued": self.queued,
            "retrying": self.retrying,
            "failed": self.failed,
            "last_error": self.last_error,
            "principal": self.principal,
        }


class UnknownSubscription(LookupError):
    """No subscription has this id (it was deleted, or expired and was removed)."""


class HubAdmin:
    """Listing, pausing, resuming and deleting subscriptions."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo

    async def subscriptions(self, limit: int = 200) -> list[SubscriptionState]:
        """The subscriptions (at most ``limit``, newest first) with their delivery figures."""
        subs, deliveries = self.repo.tables.subscriptions, self.repo.tables.deliveries
        pending = deliveries.c.status == PENDING
        figures = (
            select(
                deliveries.c.subscription_id.label("sid"),
                func.sum(case((pending & (deliveries.c.attempts == 0), 1), else_=0)).label("q"),
                func.sum(case((pending & (deliveries.c.attempts > 0), 1), else_=0)).label("r"),
                func.sum(case((deliveries.c.status == FAILED, 1), else_=0)).label("f"),
                func.max(
                    case((deliveries.c.status == DONE, deliveries.c.finished_at), else_=None)
                ).label("last"),
            )
            .group_by(deliveries.c.subscription_id)
            .subquery("figures")
        )
        statement = (
            select(subs, figures.c.q, figures.c.r, figures.c.f, figures.c.last)
            .outerjoin(figures, figures.c.sid == subs.c.id)
            .order_by(subs.c.id.desc())
            .limit(limit)
        )
        now = time.time()
        async with self.repo.engine.connect() as conn:
            rows = (await conn.execute(statement)).mappings().all()
            errors = await self._last_errors(conn, [row["id"] for row in rows])
        return [
            SubscriptionState(
                id=int(row["id"]),
                topic=row["topic"],
                callback=row["callback"],
                state=(
                    EXPIRED
                    if row["expires_at"] <= now
                    else PAUSED
                    if row["paused_at"] is not None
                    else ACTIVE
                ),
                expires_at=float(row["expires_at"]),
                last_delivery=None if row["last"] is None else float(row["last"]),
                queued=int(row["q"] or 0),
                retrying=int(row["r"] or 0),
                failed=int(row["f"] or 0),
                last_error=errors.get(int(row["id"])),
                principal=row["principal"],
            )
            for row in rows
        ]

    async def _last_errors(self, conn: Any, ids: list[int]) -> dict[int, str]:
        if not ids:
            return {}
        deliveries = self.repo.tables.deliveries
        latest = (
            select(func.max(deliveries.c.id))
            .where(deliveries.c.subscription_id.in_(ids), deliveries.c.last_error.is_not(None))
            .group_by(deliveries.c.subscription_id)
        )
        rows = await conn.execute(
            select(deliveries.c.subscription_id, deliveries.c.last_error).where(
                deliveries.c.id.in_(latest)
            )
        )
        return {int(sid): str(error) for sid, error in rows}

    async def pause(self, subscription_id: int) -> None:
        await self._set_paused(subscription_id, time.time())

    async def resume(self, subscription_id: int) -> None:
        await self._set_paused(subscription_id, None)

    async def _set_paused(self, subscription_id: int, value: float | None) -> None:
        subs = self.repo.tables.subscriptions
        async with self.repo.engine.begin() as conn:
            result = await conn.execute(
                update(subs).where(subs.c.id == subscription_id).values(paused_at=value)
            )
        if not result.rowcount:
            raise UnknownSubscription(subscription_id)

    async def delete(self, subscription_id: int) -> None:
        """Remove the subscription and its pending deliveries (the subscriber is not told, as
        when its lease runs out)."""
        subs, deliveries = self.repo.tables.subscriptions, self.repo.tables.deliveries
        async with self.repo.engine.begin() as conn:
            found = await conn.scalar(select(subs.c.id).where(subs.c.id == subscription_id))
            if found is None:
                raise UnknownSubscription(subscription_id)
            await conn.execute(
                delete(deliveries).where(deliveries.c.subscription_id == subscription_id)
            )
            await conn.execute(delete(subs).where(subs.c.id == subscription_id))
