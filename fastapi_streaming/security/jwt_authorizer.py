"""Plain JWT: access tokens from any issuer (an API gateway, Keycloak, WSO2's key manager).

Signed with a shared secret (HS256) or a key pair (RS256, ES256...), the key given outright or
found by the token's ``kid`` in a JWKS document (a URL, fetched and cached, or the document
itself). The audience and issuer are checked when configured, with a leeway for clock skew, and
the scope claim's name is configurable: ``scope`` (RFC 9068, a space-separated string) or
``scp`` (a list, as some issuers write it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import anyio.to_thread
import jwt
from starlette.requests import HTTPConnection

from ..errors import Unavailable
from .authorizer import BearerAuthenticator
from .challenges import invalid_token
from .principal import Principal, parse_scopes, timestamp_to_datetime

#: Why PyJWT refused a token, in words a client developer can act on.
_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "The access token has expired."),
    (jwt.InvalidAudienceError, "The access token is not meant for this API (audience)."),
    (jwt.InvalidIssuerError, "The access token comes from an issuer this API does not trust."),
    (jwt.ImmatureSignatureError, "The access token is not valid yet."),
    (jwt.InvalidSignatureError, "The access token's signature is not valid."),
    (jwt.InvalidAlgorithmError, "The access token is signed with an algorithm not accepted."),
    (jwt.MissingRequiredClaimError, "The access token lacks a required claim."),
    (jwt.PyJWKClientError, "The access token's signing key is unknown."),
    (jwt.DecodeError, "The access token is malformed."),
)


class JWTAuthorizer(BearerAuthenticator):
    """Verifies JSON Web Tokens and reads the principal from their claims.

    Args:
        key: the secret (HS*) or public key (RS*, ES*, PEM or a ``cryptography`` key).
        jwks_url: where the issuer publishes its keys (``.../.well-known/jwks.json``); the
            document is fetched off the event loop and cached for ``jwks_cache_seconds``.
        jwks: a JWKS document given directly, instead of a URL.
        algorithms: the algorithms accepted; never inferred from the token itself.
        audience: the ``aud`` this API answers to (one or several); None skips the check.
        issuer: the trusted ``iss`` (one or several); None skips the check.
        leeway: seconds of clock skew tolerated on ``exp``, ``nbf`` and ``iat``.
        scope_claim: the claim that lists the scopes: ``"scope"`` or ``"scp"``.
        subject_claim: the claim that names the client.
        require_expiry: refuse tokens without ``exp``; a stream opened with one would never end.
        allow_query_token: accept the ``access_token`` query parameter (browsers need it).
    """

    def __init__(
        self,
        *,
        key: Any = None,
        jwks_url: str | None = None,
        jwks: Mapping[str, Any] | None = None,
        algorithms: Sequence[str] = ("HS256",),
        audience: str | Sequence[str] | None = None,
        issuer: str | Sequence[str] | None = None,
        leeway: float = 0,
        scope_claim: str = "scope",
        subject_claim: str = "sub",
        require_expiry: bool = True,
        allow_query_token: bool = True,
        jwks_cache_seconds: float = 300,
    ) -> None:
        if sum(source is not None for source in (key, jwks_url, jwks)) != 1:
            raise ValueError("Give the JWTAuthorizer exactly one of key, jwks_url or jwks.")
        if not algorithms or "none" in (name.lower() for name in algorithms):
            raise ValueError("List the signing algorithms to accept; 'none' is never accepted.")
        self.key = key
        self.jwks_client = (
            jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=jwks_cache_seconds)
            if jwks_url is not None
            else None
        )
        self.jwk_set = jwt.PyJWKSet.from_dict(dict(jwks)) if jwks is not None else None
        self.algorithms = list(algorithms)
        self.audience = _one_or_list(audience)
        self.issuer = _one_or_list(issuer)
        self.leeway = leeway
        self.scope_claim = scope_claim
        self.subject_claim = subject_claim
        self.require_expiry = require_expiry
        self.allow_query_token = allow_query_token

    async def verify(self, token: str, connection: HTTPConnection) -> Principal:
        try:
            key = await self._signing_key(token)
            claims = jwt.decode(
                token,
                key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={
                    "require": [self.subject_claim, *(["exp"] if self.require_expiry else [])],
                    "verify_aud": self.audience is not None,
                },
            )
        except jwt.PyJWKClientConnectionError as exc:
            raise Unavailable(f"The keys of the token's issuer cannot be fetched: {exc}") from None
        except jwt.PyJWTError as exc:
            raise invalid_token(_reason(exc)) from None
        return self.principal(claims)

    def principal(self, claims: Mapping[str, Any]) -> Principal:
        """The principal of verified claims (override to read more than the standard ones)."""
        try:
            scopes = parse_scopes(claims.get(self.scope_claim))
        except TypeError:
            reason = f"The access token's {self.scope_claim} claim is malformed."
            raise invalid_token(reason) from None
        expires_at = timestamp_to_datetime(claims.get("exp"))
        if expires_at is not None and self.leeway:
            # Accepted within the leeway, so the connection may live as long.
            expires_at = timestamp_to_datetime(expires_at.timestamp() + self.leeway)
        return Principal(
            subject=str(claims[self.subject_claim]),
            scopes=scopes,
            expires_at=expires_at,
            claims=dict(claims),
        )

    async def _signing_key(self, token: str) -> Any:
        if self.jwks_client is not None:
            # PyJWKClient fetches with urllib, which blocks: keep it off the event loop.
            found = await anyio.to_thread.run_sync(self.jwks_client.get_signing_key_from_jwt, token)
            return found.key
        if self.jwk_set is not None:
            kid = jwt.get_unverified_header(token).get("kid")
            for candidate in self.jwk_set.keys:
                if kid is None or candidate.key_id == kid:
                    return candidate.key
            raise jwt.PyJWKClientError(f"no key with kid {kid!r} in the JWKS document")
        return self.key


def _reason(exc: jwt.PyJWTError) -> str:
    for kind, reason in _REASONS:
        if isinstance(exc, kind):
            if isinstance(exc, jwt.MissingRequiredClaimError):
                return f"The access token lacks the required {exc.claim!r} claim."
            return reason
    return "The access token is not valid."


def _one_or_list(value: str | Sequence[str] | None) -> str | list[str] | None:
    return value if value is None or isinstance(value, str) else list(value)
