"""The hub's HTTP requests to callbacks: checked, pinned, bounded in time, never redirected.

Redirects are not followed (WebSub counts a 3xx as a failure, and following one would skip the
address check). Proxy variables of the environment are ignored: a callback is called directly,
at the address that was checked. Every request has an overall deadline besides httpx's
per-operation timeouts, so a callback that answers one byte a second cannot hold a worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

import anyio
import httpx

from .settings import WebSubSettings
from .ssrf import CallbackGuard

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


class Outbound:
    """One pooled HTTP client for every request the hub makes to subscribers."""

    def __init__(self, settings: WebSubSettings, guard: CallbackGuard) -> None:
        self.settings = settings
        self.guard = guard
        connections = settings.concurrency + settings.verify_concurrency
        self.client = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": settings.user_agent},
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=32),
        )

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

    async def post(self, callback: str, body: bytes, headers: dict[str, str]) -> Answer:
        """POST a content distribution request; the answer's body is ignored, as WebSub says."""
        timeout = self.settings.delivery_timeout
        pinned = await self.guard.pin(httpx.URL(callback))
        with anyio.fail_after(timeout):
            request = self.client.build_request(
                "POST",
                pinned.url,
                content=body,
                headers={**headers, **pinned.headers},
                extensions={**pinned.extensions, "timeout": _timeouts(timeout)},
            )
            response = await self.client.send(request, stream=True)
            await response.aclose()
        return Answer(response.status_code)

    async def aclose(self) -> None:
        await self.client.aclose()


def _timeouts(seconds: float) -> dict[str, float]:
    return {"connect": seconds, "read": seconds, "write": seconds, "pool": seconds}
