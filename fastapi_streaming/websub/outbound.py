"""The hub's HTTP requests to callbacks: checked, pinned, bounded in time, never redirected.

Content distribution goes through :mod:`.pool` (keep-alive connections per checked origin,
HTTP/1.1 of its own, :mod:`.http1`): thousands of deliveries a second to few hosts.
Verification and denial requests, one per subscription request, go through httpx.

Redirects are not followed (WebSub counts a 3xx as a failure, and following one would skip the
address check). Proxy variables of the environment are ignored: a callback is called directly,
at the address that was checked. Every request has an overall deadline besides httpx's
per-operation timeouts, so a callback that answers one byte a second cannot hold a worker.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from dataclasses import dataclass
from urllib.parse import urlencode

import anyio
import httpx

from .http1 import header_lines, request_line
from .pool import Origin, OriginPool, send
from .settings import WebSubSettings
from .ssrf import CallbackGuard, IPAddress

#: At most this much of a verification answer is read: a challenge is short.
CHALLENGE_READ_LIMIT = 4096


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes = b""


def with_query(callback: str, params: list[tuple[str, str]]) -> httpx.URL:
    """The callback with ``params`` appended after its own query (WebSub 5.1.1: preserved)."""
    url = httpx.URL(callback)
    extra = urlencode(params)
    query = url.query.decode("ascii")
    return url.copy_with(query=(f"{query}&{extra}" if query else extra).encode("ascii"))


@dataclass(frozen=True)
class CallbackTarget:
    """A callback URL taken apart once for its requests: where to connect, what to send."""

    url: httpx.URL
    scheme: str
    host: str
    port: int
    #: Path and query, as sent in the request line.
    target: bytes
    #: The ``Host`` header: the callback's host (and port when not the scheme's default).
    host_header: bytes
    #: (scheme, host, port): with the checked address, which pool a delivery goes through.
    key: tuple[str, str, int]


@functools.lru_cache(maxsize=16384)
def split_callback(callback: str) -> CallbackTarget:
    url = httpx.URL(callback)
    port = url.port or (443 if url.scheme == "https" else 80)
    key = (url.scheme, url.host, port)
    return CallbackTarget(url, url.scheme, url.host, port, url.raw_path, url.netloc, key)


@functools.lru_cache(maxsize=16384)
def _request_start(target: bytes, host: bytes, user_agent: bytes) -> bytes:
    """A delivery's request line and its headers before ``Content-Length``, built and checked
    once per callback rather than per delivery."""
    return request_line(b"POST", target) + header_lines(
        [(b"host", host), (b"user-agent", user_agent)]
    )


class Outbound:
    """The hub's requests to subscribers: deliveries through keep-alive pools of its own,
    verifications (rare, and their answer's body matters) through httpx."""

    def __init__(self, settings: WebSubSettings, guard: CallbackGuard) -> None:
        self.settings = settings
        self.guard = guard
        connections = settings.concurrency + settings.verify_concurrency
        self.client = httpx.AsyncClient(
            follow_redirects=False,
            verify=tls_context(settings),
            trust_env=False,
            headers={"User-Agent": settings.user_agent},
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=32),
        )
        #: Deliveries' keep-alive connections, one pool per checked origin.
        self.tls = tls_context(settings)
        #: Keyed by the callback's (scheme, host, port) and its checked address, which is what
        #: makes an :class:`.pool.Origin`, without building one per delivery.
        self.pools: dict[tuple[tuple[str, str, int], IPAddress], OriginPool] = {}
        self._next_prune = 0.0
        self._user_agent = settings.user_agent.encode("ascii")

    async def get(self, url: httpx.URL) -> Answer:
        """GET a verification or denial URL; the start of the body is read (for a challenge)."""
        timeout = self.settings.verify_timeout
        pinned = await self.guard.pin(url)
        with anyio.fail_after(timeout):
            request = self.client.build_request(
                "GET",
                pinned.url,
                headers=pinned.headers,
                extensions={**pinned.extensions, "timeout": _timeouts(timeout)},
            )
            response = await self.client.send(request, stream=True)
            try:
                body = b""
                async for chunk in response.aiter_raw():
                    body += chunk
                    if len(body) > CHALLENGE_READ_LIMIT:
                        break
            finally:
                await response.aclose()
        return Answer(response.status_code, body)

    async def post(self, callback: str, body: bytes, fields: bytes) -> Answer:
        """POST a content distribution request; the answer's body is ignored, as WebSub says.

        ``fields``: the header lines after ``Content-Length``, as :func:`.http1.header_lines`
        makes them (checked there). Through the keep-alive pool of the callback's checked
        address (:mod:`.pool`); raises :class:`.ssrf.CallbackRefused`, ``TimeoutError`` or
        ``OSError``.
        """
        settings = self.settings
        loop = asyncio.get_running_loop()
        target = split_callback(callback)
        address = await self.guard.checked_address(target.url)
        now = loop.time()
        if now >= self._next_prune:
            self._prune(now)
        pool = self.pools.get((target.key, address))
        if pool is None:
            origin = Origin(target.scheme, str(address), target.port, target.host)
            tls = self.tls if target.scheme == "https" else None
            pool = OriginPool(origin, settings.connections_per_host, tls)
            self.pools[target.key, address] = pool
        head = b"%scontent-length: %d\r\n%s\r\n" % (
            _request_start(target.target, target.host_header, self._user_agent),
            len(body),
            fields,
        )
        status = await send(
            pool,
            deadline=now + settings.delivery_timeout,
            keepalive=settings.keepalive_seconds,
            head=head,
            body=body,
        )
        return Answer(status)

    def _prune(self, now: float) -> None:
        """Close connections idle too long, forget pools with none left (every keep-alive)."""
        keepalive = self.settings.keepalive_seconds
        self._next_prune = now + keepalive
        for origin, pool in list(self.pools.items()):
            pool.prune(keepalive)
            if pool.unused:
                del self.pools[origin]

    async def aclose(self) -> None:
        for pool in self.pools.values():
            pool.close()
        self.pools.clear()
        await self.client.aclose()


def tls_context(settings: WebSubSettings) -> ssl.SSLContext:
    """How the hub checks callbacks' certificates: verified by default (see the settings)."""
    context = ssl.create_default_context(cafile=settings.tls_ca_file)
    if not settings.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _timeouts(seconds: float) -> dict[str, float]:
    return {"connect": seconds, "read": seconds, "write": seconds, "pool": seconds}
