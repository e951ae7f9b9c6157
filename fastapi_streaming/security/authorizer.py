"""The authenticator interface: a connection in, a principal (or a refusal) out.

An authenticator only says *who* the client is and what its credentials grant; whether that is
enough for the topics it asks for (authorization) is decided in
:mod:`fastapi_streaming.security.access`, the same way for every authenticator and every
transport. ``Authorizer`` and ``BearerAuthorizer`` are the former names, kept as deprecated
aliases.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from starlette.requests import HTTPConnection

from .principal import Principal
from .tokens import bearer_token

#: AsyncAPI security schemes for a bearer token in the header or the query parameter.
BEARER_SCHEMES: dict[str, dict[str, Any]] = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token in the `Authorization: Bearer` header. Its scope "
        "claim must grant every scope the operation lists.",
    },
    "accessTokenQuery": {
        "type": "httpApiKey",
        "name": "access_token",
        "in": "query",
        "description": "The same access token in the `access_token` query parameter, for "
        "browsers' `EventSource` and `WebSocket`, which cannot set headers. It is never "
        "written to the server's logs.",
    },
}


@runtime_checkable
class Authenticator(Protocol):
    """Turns a connection (an HTTP request or a WebSocket handshake) into a principal.

    ``authenticate`` returns the :class:`Principal`, or None when the client sent no
    credentials at all (it may still use public topics), or raises
    :class:`~fastapi_streaming.errors.Unauthorized` when the credentials are bad. Build the
    error with :func:`~fastapi_streaming.security.invalid_token` so clients get the RFC 6750
    challenge.
    """

    async def authenticate(self, connection: HTTPConnection) -> Principal | None: ...


class BearerAuthenticator(ABC):
    """Base of authenticators that read a bearer token: subclasses only verify the token."""

    #: Whether the ``access_token`` query parameter is accepted besides the header.
    allow_query_token: bool = True

    async def authenticate(self, connection: HTTPConnection) -> Principal | None:
        token = bearer_token(connection, allow_query=self.allow_query_token)
        if token is None:
            return None
        return await self.verify(token, connection)

    @abstractmethod
    async def verify(self, token: str, connection: HTTPConnection) -> Principal:
        """The principal of a token, or :class:`~fastapi_streaming.errors.Unauthorized`."""

    def security_schemes(self) -> Mapping[str, Mapping[str, Any]]:
        """How clients present credentials, as AsyncAPI ``securitySchemes``."""
        return BEARER_SCHEMES


def security_schemes(authorizers: tuple[Authenticator, ...]) -> dict[str, dict[str, Any]]:
    """The AsyncAPI security schemes of every authorizer, merged by name."""
    schemes: dict[str, dict[str, Any]] = {}
    for authorizer in authorizers:
        describe = getattr(authorizer, "security_schemes", None)
        found = describe() if callable(describe) else BEARER_SCHEMES
        for name, scheme in found.items():
            schemes.setdefault(name, dict(scheme))
    return schemes


#: Deprecated alias of :class:`Authenticator` (its former name).
Authorizer = Authenticator
#: Deprecated alias of :class:`BearerAuthenticator` (its former name).
BearerAuthorizer = BearerAuthenticator
