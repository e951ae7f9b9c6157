"""How a refusal by a plan is answered: 429 with ``Retry-After`` and the IETF headers.

The ``RateLimit-Policy`` and ``RateLimit`` fields follow the IETF HTTP API working group's
draft (structured fields): ``RateLimit-Policy: "gold-quota";q=1000;w=86400`` names a policy
with its quota and window in seconds, ``RateLimit: "gold-quota";r=0;t=42`` says what remains
of it and in how many seconds the window resets. Sockets get the same facts in an ``error``
message or a close reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import StreamingError

#: Close reason code of a stream ended by its plan (WebSocket close 1008, an SSE ``close``).
QUOTA_EXCEEDED = "quota_exceeded"


@dataclass(frozen=True)
class Refusal:
    """Which limit of which plan refused, and when it lets the principal in again."""

    plan: str
    limit: str  # "quota", "publish_rate", "max_connections", "max_duration"
    amount: int
    window: int  # seconds
    retry_after: int  # seconds, at least 1

    @property
    def policy(self) -> str:
        return f"{self.plan}-{self.limit}"

    def headers(self) -> dict[str, str]:
        return {
            "Retry-After": str(self.retry_after),
            "RateLimit-Policy": f'"{self.policy}";q={self.amount};w={self.window}',
            "RateLimit": f'"{self.policy}";r=0;t={self.retry_after}',
        }

    def describe(self) -> str:
        what = {
            "quota": f"a quota of {self.amount} events per {self.window} s",
            "publish_rate": f"{self.amount} publishes per {self.window} s",
            "max_connections": f"{self.amount} connections at once",
            "max_duration": f"connections of at most {self.window} s",
        }[self.limit]
        return (
            f"Plan {self.plan!r} allows {what}; that limit is reached. "
            f"Come back in {self.retry_after} s."
        )


def seconds_until(reset_time: float, now: float) -> int:
    return max(1, math.ceil(reset_time - now))


class QuotaExceeded(StreamingError):
    """A plan refused a request, a message or a stream (HTTP 429)."""

    status_code = 429
    error = "quota_exceeded"

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.describe(), headers=refusal.headers())
        self.refusal = refusal

    def to_message(self, request_id: object = None) -> dict[str, object]:
        message = super().to_message(request_id)
        message.update(
            limit=self.refusal.limit,
            plan=self.refusal.plan,
            retry_after=self.refusal.retry_after,
        )
        return message
