"""Plans: what a principal may use of a streaming API, as WSO2's business plans for streams.

A :class:`Plan` caps the events a principal's connections and publishes count in a window
(``quota="1000000/day"``), how long one connection may last, how fast the principal may
publish, and how many connections it may hold at once. Which plan applies is decided per
principal: a fixed plan, :class:`PlanByClaim` (a token claim names it), or any function of the
principal and the connection.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from limits import RateLimitItem, RateLimitItemPerSecond, parse
from starlette.requests import HTTPConnection

from ..security.principal import Principal


def _rate_item(text: str, what: str) -> RateLimitItem:
    try:
        return parse(text)
    except ValueError:
        raise ValueError(
            f"{what} {text!r} is not a rate: write it as '<count>/<period>', "
            "for example '1000/day', '5/minute' or '10 per 30 seconds'."
        ) from None


@dataclass(frozen=True)
class Plan:
    """A subscription plan. Every limit is optional; whichever is reached first applies.

    Args:
        name: names the plan in answers, headers and metrics (``"gold"``).
        quota: events counted per window, ``"<count>/<period>"`` (``"1000000/day"``): every
            WebSocket message in either direction, every SSE event, every WebSub delivery,
            every HTTP publish; a request naming several topics counts once per topic.
        max_duration: seconds a connection may stay open.
        publish_rate: events a principal may publish per second (a number, with ``burst``),
            or a rate such as ``"5/minute"``.
        burst: with a numeric ``publish_rate``, how many publishes may come at once; they
            are refused once ``burst`` were sent within ``burst / publish_rate`` seconds.
        max_connections: connections (streams, sockets) a principal may hold at once.
    """

    name: str
    quota: str | None = None
    max_duration: float | None = None
    publish_rate: float | str | None = None
    burst: int | None = None
    max_connections: int | None = None
    quota_item: RateLimitItem | None = field(init=False, repr=False, compare=False)
    publish_item: RateLimitItem | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.name or any(char in self.name for char in ' ",;/'):
            raise ValueError(f"A plan's name must be a word, not {self.name!r}.")
        quota = _rate_item(self.quota, "quota") if self.quota is not None else None
        object.__setattr__(self, "quota_item", quota)
        object.__setattr__(self, "publish_item", self._publish_item())
        for name in ("max_duration", "max_connections", "burst"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"Plan {self.name!r}: {name} must be positive, not {value!r}.")

    def _publish_item(self) -> RateLimitItem | None:
        rate = self.publish_rate
        if rate is None:
            if self.burst is not None:
                raise ValueError(f"Plan {self.name!r}: burst needs a numeric publish_rate.")
            return None
        if isinstance(rate, str):
            if self.burst is not None:
                raise ValueError(
                    f"Plan {self.name!r}: give burst with a numeric publish_rate (events per "
                    f"second); {rate!r} already says how many fit in its period."
                )
            return _rate_item(rate, "publish_rate")
        if rate <= 0:
            raise ValueError(f"Plan {self.name!r}: publish_rate must be positive, not {rate!r}.")
        burst = self.burst or max(1, math.ceil(rate))
        # ``burst`` events per the time they take at ``rate``: a moving window this long lets
        # a burst through at once and then holds the average to ``rate``.
        return RateLimitItemPerSecond(burst, max(1, math.ceil(burst / rate)))


#: Picks the plan of a principal (None when anonymous) on a connection: a plan, a plan's
#: name, or None for no limits. May be a coroutine function.
PlanChooser = Callable[
    [Principal | None, HTTPConnection], "Plan | str | Awaitable[Plan | str | None] | None"
]


class PlanByClaim:
    """Chooses the plan a token claim names (``plan`` by default, or the OAuth client id).

    Args:
        plans: the plans a claim may name.
        claim: the claim of the principal's token that names its plan.
        default: the plan of principals whose token names none (or an unknown one), and of
            anonymous clients; None leaves them unlimited.
        by_value: map claim values to plan names (``{"client-a": "gold"}``), for a claim such
            as ``client_id`` whose values are not plan names.
    """

    def __init__(
        self,
        plans: Iterable[Plan],
        *,
        claim: str = "plan",
        default: Plan | str | None = None,
        by_value: dict[str, str] | None = None,
    ) -> None:
        self.plans = {plan.name: plan for plan in plans}
        self.claim = claim
        self.by_value = dict(by_value or {})
        self.default = self._named(default) if isinstance(default, str) else default
        for name in self.by_value.values():
            self._named(name)

    def _named(self, name: str) -> Plan:
        try:
            return self.plans[name]
        except KeyError:
            raise ValueError(
                f"No plan named {name!r}; the plans are: {', '.join(self.plans) or 'none'}."
            ) from None

    def __call__(self, principal: Principal | None, connection: HTTPConnection) -> Plan | None:
        if principal is None:
            return self.default
        value = principal.claims.get(self.claim)
        if not isinstance(value, str):
            return self.default
        name = self.by_value.get(value, value)
        return self.plans.get(name, self.default)


async def choose_plan(
    choice: Plan | PlanChooser | None, principal: Principal | None, connection: HTTPConnection
) -> Plan | None:
    """The plan ``choice`` gives this principal on this connection."""
    if choice is None or isinstance(choice, Plan):
        return choice
    picked: Any = choice(principal, connection)
    if inspect.isawaitable(picked):
        picked = await picked
    if picked is None or isinstance(picked, Plan):
        return picked
    plans = getattr(choice, "plans", None)
    if isinstance(picked, str) and isinstance(plans, dict) and picked in plans:
        found: Plan = plans[picked]
        return found
    raise TypeError(
        f"The plan chooser {choice!r} returned {picked!r}; return a Plan or None "
        "(a name only when it is a PlanByClaim's)."
    )
