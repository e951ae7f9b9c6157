"""Real tokens from a real fastapi-users setup: register a user, log in through its routes."""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

ALL_SCOPES = ("stocks:read", "orders:read", "orders:write")


class Account:
    """A user registered on a running server, who logs in for tokens of chosen scopes."""

    def __init__(self, base_url: str, password: str = "correct horse battery") -> None:
        self.base_url = base_url
        self.email = f"user-{uuid.uuid4().hex[:10]}@example.com"
        self.password = password
        with httpx.Client(base_url=base_url, timeout=30) as http:
            answer = http.post("/auth/register", json={"email": self.email, "password": password})
        assert answer.status_code == 201, answer.text

    def login(self, scopes: tuple[str, ...] | None = None, *, backend: str = "jwt") -> str:
        """A token from ``/auth/{backend}/login``; ``scopes`` go in the form's ``scope``."""
        form = {"username": self.email, "password": self.password}
        if scopes is not None:
            form["scope"] = " ".join(scopes)
        with httpx.Client(base_url=self.base_url, timeout=30) as http:
            answer = http.post(f"/auth/{backend}/login", data=form)
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["access_token"]
        return token

    def without(self, scope: str) -> str:
        return self.login(tuple(s for s in ALL_SCOPES if s != scope))


def claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified (to read what the server put in it)."""
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def with_claims(token: str, **changes: Any) -> str:
    """The token with its payload changed and its original signature kept: a forgery."""
    header, _, signature = token.split(".")
    payload = json.dumps({**claims(token), **changes}, separators=(",", ":")).encode()
    forged = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def wait_until_expired(token: str, margin: float = 0.3) -> None:
    time.sleep(max(0.0, claims(token)["exp"] - time.time() + margin))


@dataclass
class Tokens:
    """One account's tokens for every case of the security matrix."""

    account: Account
    full: str
    lacking: dict[str, str]
    tampered: str
    expired: str
    foreign: str

    @classmethod
    def issue(cls, base_url: str) -> Tokens:
        account = Account(base_url)
        expired = account.login(backend="short")
        # A token for stocks:read only, its payload rewritten to claim every scope.
        tampered = with_claims(account.login(("stocks:read",)), scope=" ".join(ALL_SCOPES))
        tokens = cls(
            account=account,
            full=account.login(),
            lacking={scope: account.without(scope) for scope in ALL_SCOPES},
            tampered=tampered,
            expired=expired,
            foreign=account.login(backend="foreign"),
        )
        wait_until_expired(expired)
        return tokens

    def for_case(self, case: str, missing: str = "") -> str | None:
        return {
            "none": None,
            "malformed": "not-a-jwt",
            "bad_signature": self.tampered,
            "expired": self.expired,
            "wrong_audience": self.foreign,
            "missing_scope": self.lacking.get(missing),
            "all_scopes": self.full,
        }[case]

    def all(self) -> list[str]:
        return [self.full, *self.lacking.values(), self.tampered, self.expired, self.foreign]
