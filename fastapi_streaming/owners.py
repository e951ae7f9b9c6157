"""Whom a client connection belongs to: what usage analytics and the console group by.

Kept apart from the fan-out, which only carries the owner along with a client's queue and
never reads it per event.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Sequence

from starlette.requests import HTTPConnection

#: Where a connection keeps its owner in its ASGI scope, so its publishes find it.
SCOPE_KEY = "fastapi_streaming.owner"
#: The principal of events server code emits.
SERVER = "(server)"
#: The plan label of clients no plan applies to.
NO_PLAN = "none"


class Owner:
    """Who a client connection belongs to, for usage analytics and the console: the
    principal's key (a token's ``sub``, or the limits' key), and the plan each topic meters
    it under (by address template; the empty template holds the plan of the rest).

    One per connection, set by its transport; the fan-out never reads it per event.
    """

    __slots__ = ("plans", "principal")

    def __init__(self, principal: str, plans: dict[str, str] | None = None) -> None:
        self.principal = principal
        self.plans = plans if plans is not None else {}

    def plan(self, template: str) -> str:
        return self.plans.get(template) or self.plans.get("", NO_PLAN)


def owner_in(context: Sequence[object]) -> Owner | None:
    """The owner of the connection among a handler context's objects, if its transport set one."""
    for item in context:
        if isinstance(item, HTTPConnection):
            owner = item.scope.get(SCOPE_KEY)
            return owner if isinstance(owner, Owner) else None
    return None


def default_owner_key(subject: str | None, connection: HTTPConnection) -> str:
    """A principal's subject, or for an anonymous client its address (as plans count them)."""
    if subject is not None:
        return subject
    host = connection.client.host if connection.client else "unknown"
    return f"address:{host}"


class OwnerUsage:
    """The events handed to owned subscriptions, for usage analytics, counted without
    touching the per-event path: a subscription remembers its stream's event count when it
    began, and :meth:`take` reads the growth of each, once per flush.

    Kept only while ``tracking`` (usage analytics sets it, and takes the counts regularly).
    """

    def __init__(self) -> None:
        self.tracking = False
        #: (client, address) -> its owner, and the stream's event count when last taken.
        self._seen: dict[tuple[Hashable, str], tuple[Owner, int]] = {}
        #: Counts of subscriptions that ended since the last take.
        self._ended: Counter[tuple[str, str, str]] = Counter()

    def joined(self, client: Hashable, address: str, events: int, owner: Owner) -> None:
        self._seen[(client, address)] = (owner, events)

    def left(self, client: Hashable, address: str, template: str, events: int) -> None:
        found = self._seen.pop((client, address), None)
        if found is not None:
            owner, before = found
            self._ended[(owner.principal, owner.plan(template), template)] += events - before

    def take(
        self, stream_of: Callable[[str], tuple[str, int] | None]
    ) -> Counter[tuple[str, str, str]]:
        """What was handed out since the last take, by (principal, plan, template);
        ``stream_of(address)`` is the stream's (template, event count), or None."""
        taken, self._ended = self._ended, Counter()
        seen = self._seen
        for key, (owner, before) in seen.items():
            found = stream_of(key[1])
            if found is None or found[1] == before:
                continue
            template, events = found
            taken[(owner.principal, owner.plan(template), template)] += events - before
            seen[key] = (owner, events)
        return taken
