"""Verification of intent (WebSub 5.3) and the denial notification (WebSub 5.2).

Both are GET requests to the callback with ``hub.*`` parameters appended to its own query. A
verification succeeds only on a 2xx answer whose body is exactly the challenge: a random,
single-use, unguessable string, so only a subscriber that really asked can confirm.
"""

from __future__ import annotations

import logging
import secrets

import httpx

from .outbound import Outbound, with_query
from .settings import WebSubSettings
from .ssrf import CallbackRefused

logger = logging.getLogger("fastapi_streaming.websub")


def new_challenge() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


class Verifier:
    """Asks callbacks to confirm subscription requests, and tells them of denials."""

    def __init__(self, settings: WebSubSettings, outbound: Outbound) -> None:
        self.settings = settings
        self.outbound = outbound

    async def confirm(
        self, *, mode: str, callback: str, topic_url: str, lease_seconds: int | None
    ) -> tuple[bool, str]:
        """Whether the subscriber confirms ``mode``; the second value says why not."""
        challenge = new_challenge()
        params = [("hub.mode", mode), ("hub.topic", topic_url), ("hub.challenge", challenge)]
        if lease_seconds is not None:
            params.append(("hub.lease_seconds", str(lease_seconds)))
        try:
            answer = await self.outbound.get(with_query(callback, params))
        except CallbackRefused as exc:
            return False, str(exc)
        except TimeoutError:
            return False, f"no answer within {self.settings.verify_timeout} s"
        except httpx.HTTPError as exc:
            return False, f"request failed: {exc!r}"
        if not 200 <= answer.status < 300:
            return False, f"answered HTTP {answer.status}"
        if answer.body != challenge.encode():
            return False, "answered 2xx without echoing the challenge"
        return True, ""

    async def deny(self, *, callback: str, topic_url: str, reason: str) -> None:
        """Send ``hub.mode=denied`` with the reason; the answer does not matter."""
        params = [("hub.mode", "denied"), ("hub.topic", topic_url), ("hub.reason", reason)]
        try:
            await self.outbound.get(with_query(callback, params))
        except (CallbackRefused, TimeoutError, httpx.HTTPError) as exc:
            logger.info("Could not send a denial to %s: %r", callback, exc)
