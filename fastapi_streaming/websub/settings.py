"""How a WebSub hub behaves: where it keeps subscriptions, and every limit it enforces.

One frozen object, so the hub, its workers and the docs agree on a single set of numbers. The
defaults suit a public hub: leases of ten days (the spec's suggestion), no callbacks to private
networks, modest per-client limits. Tests and trusted deployments loosen them explicitly.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

DAY = 86_400


@dataclass(frozen=True)
class WebSubSettings:
    """Configuration of the WebSub hub of a :class:`~fastapi_streaming.StreamingAPI`."""

    #: SQLAlchemy async URL of the database that holds subscriptions and pending deliveries:
    #: a SQLite file by default, ``postgresql+asyncpg://...`` in production.
    database_url: str = "sqlite+aiosqlite:///websub.sqlite3"
    #: Prefix of the three table names, so several hubs (or test runs) can share a database.
    table_prefix: str = "websub_"
    #: Create missing tables when the app starts (``python -m fastapi_streaming.websub.migrate``
    #: does the same for deployments that create schemas ahead of time).
    create_schema: bool = True
    #: The public base URL of the app (``https://api.example.com``), used in hub and topic URLs.
    #: Without it they are derived from each subscription request.
    public_url: str | None = None

    #: Lease granted when the subscriber asks for none, and the bounds any request is clamped to.
    lease_default: int = 10 * DAY
    lease_min: int = 300
    lease_max: int = 30 * DAY

    #: The spec requires ``hub.secret`` to be shorter than 200 bytes.
    max_secret_bytes: int = 199
    #: Largest subscription request body accepted (413 beyond).
    max_request_bytes: int = 8 * 1024
    #: Largest callback URL accepted.
    max_callback_length: int = 2000
    #: Verified subscriptions one topic address may have (409 beyond).
    max_subscriptions_per_topic: int = 10_000
    #: Verified subscriptions whose callbacks are on one host (409 beyond).
    max_subscriptions_per_host: int = 1_000
    #: Subscription requests one client address may make per ``rate_period`` seconds (429 beyond).
    #: Counted in each process.
    rate_limit: int = 60
    rate_period: float = 60.0

    #: Networks callbacks may resolve to although they are not public (loopback, private,
    #: link-local, ...), e.g. ``("127.0.0.1/32",)``. Empty: only globally routable addresses.
    allow_networks: tuple[str, ...] = ()

    #: Seconds the callback has to answer a verification (or denial) request.
    verify_timeout: float = 10.0
    #: Verifications running at once in one process.
    verify_concurrency: int = 32
    #: Seconds the callback has to answer a content distribution request.
    delivery_timeout: float = 10.0
    #: Attempts per delivery before it is given up (the subscription itself stays).
    max_attempts: int = 10
    #: Backoff before the n-th retry: ``min(retry_max, retry_base * 2**(n-1))``, jittered
    #: down to half of that at random.
    retry_base: float = 1.0
    retry_max: float = 3_600.0
    #: Deliveries in flight at once in one process, and to one subscription in one process.
    concurrency: int = 64
    per_subscriber_concurrency: int = 4

    #: Keep-alive connections to the callbacks of one host (one checked address) at most, and
    #: seconds an idle one is kept (below the 5 s that servers commonly keep one open).
    connections_per_host: int = 64
    keepalive_seconds: float = 4.0
    #: Seconds a callback host's checked address is reused for deliveries before its name is
    #: resolved and checked again (0: before every request). Requests always go to the
    #: address that was checked; IP literals are checked without a lookup.
    address_cache_seconds: float = 5.0

    #: How often a delivery worker looks for due deliveries recorded by other processes.
    poll_interval: float = 1.0
    #: How often a process re-reads which topics have subscriptions (to join or leave them).
    sync_interval: float = 2.0
    #: How often expired subscriptions and old delivery records are removed.
    cleanup_interval: float = 60.0
    #: Seconds a finished delivery is remembered, so a worker that received an event late cannot
    #: deliver it a second time.
    retention: float = 3_600.0
    #: Events one process may hold between receiving them and recording them in the database.
    queue_size: int = 100_000
    #: Check the certificates of ``https://`` callbacks (against the system's authorities, or
    #: only those of ``tls_ca_file``, a PEM bundle). Turn off for tests only.
    tls_verify: bool = True
    tls_ca_file: str | None = None
    #: ``User-Agent`` of the hub's requests to callbacks.
    user_agent: str = "fastapi-streaming-websub"

    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(
        init=False, repr=False
    )

    def __post_init__(self) -> None:
        if not 0 < self.lease_min <= self.lease_default <= self.lease_max:
            raise ValueError(
                "WebSub leases need 0 < lease_min <= lease_default <= lease_max, got "
                f"{self.lease_min}, {self.lease_default}, {self.lease_max}."
            )
        if self.max_secret_bytes >= 200:
            raise ValueError("hub.secret must be shorter than 200 bytes (WebSub 5.1).")
        for name in (
            "max_attempts",
            "concurrency",
            "per_subscriber_concurrency",
            "queue_size",
            "connections_per_host",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"WebSubSettings.{name} must be at least 1.")
        networks = tuple(ipaddress.ip_network(net, strict=False) for net in self.allow_networks)
        object.__setattr__(self, "networks", networks)

    def clamp_lease(self, requested: int | None) -> int:
        """The lease the hub grants for a request of ``requested`` seconds (or none)."""
        if requested is None:
            return self.lease_default
        return max(self.lease_min, min(self.lease_max, requested))

    @property
    def claim_seconds(self) -> float:
        """How long a worker owns a delivery it is attempting; longer than any attempt lasts."""
        return 2 * self.delivery_timeout + 5.0

    def backoff(self, attempts: int, fraction: float) -> float:
        """Seconds before the next attempt after ``attempts`` failures; ``fraction`` in [0, 1)."""
        ceiling: float = min(self.retry_max, self.retry_base * 2.0 ** max(0, attempts - 1))
        return ceiling * (0.5 + fraction / 2)
