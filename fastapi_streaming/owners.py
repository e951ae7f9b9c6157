"""Whom a client connection belongs to: what usage analytics and the console group by.

Kept apart from the fan-out, which only carries the owner along with a client's queue and
never reads it per event.
"""

from __future__ import annotations

from collections.abc import Sequence

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
