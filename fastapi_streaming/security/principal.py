"""Who a client is, as far as topics care: a subject, the scopes it holds, and until when.

Kept free of any token format, so authorizers of every kind (JWT, sessions, API keys) produce
the same object, and publish handlers ask for it by annotation (``principal: Principal``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..dependencies import ConnectionContext


@dataclass(frozen=True, eq=False)
class Principal(ConnectionContext):
    """An authenticated client.

    Compared by identity (``eq=False``): two connections with equal claims are still two
    clients, and the object can sit in sets of context objects.
    """

    #: Who the client is (a JWT's ``sub``).
    subject: str
    #: The scopes the client's credentials grant.
    scopes: frozenset[str] = frozenset()
    #: When the credentials stop being valid; connections opened with them end then.
    expires_at: datetime | None = None
    #: Every claim of the token, for handlers that need more than the above.
    claims: Mapping[str, Any] = field(default_factory=dict)
    #: The application's user object, when the authorizer loads one (fastapi-users does).
    user: Any = None

    @property
    def expires_in(self) -> float | None:
        """Seconds until the credentials expire (negative once they have); None if never."""
        if self.expires_at is None:
            return None
        return self.expires_at.timestamp() - time.time()

    @property
    def expired(self) -> bool:
        remaining = self.expires_in
        return remaining is not None and remaining <= 0

    def missing(self, required: Iterable[str]) -> list[str]:
        """The scopes of ``required`` this principal lacks, in the order given."""
        return [scope for scope in dict.fromkeys(required) if scope not in self.scopes]


def parse_scopes(value: Any) -> frozenset[str]:
    """A scope claim as issuers write it: ``"a b"`` (RFC 9068, RFC 8693) or ``["a", "b"]``."""
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, (list, tuple, set, frozenset)):
        return frozenset(str(item) for item in value)
    raise TypeError(f"a scope claim is a space-separated string or a list, not {value!r}")


def timestamp_to_datetime(value: Any) -> datetime | None:
    """A JWT ``exp`` (seconds since the epoch) as an aware UTC datetime."""
    if value is None:
        return None
    return datetime.fromtimestamp(float(value), tz=timezone.utc)
