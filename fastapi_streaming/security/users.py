"""fastapi-users, with scopes: put a user's scopes into its JWTs, and accept those tokens.

fastapi-users has no notion of scopes. Rather than fork it, this module plugs into the two
places it leaves open:

- the *strategy* that writes tokens: :class:`ScopedJWTStrategy` is its ``JWTStrategy`` with the
  user's granted scopes in the ``scope`` claim (space-separated, RFC 9068 style), narrowed to
  the scopes the login form asked for (the OAuth2 password flow's ``scope`` field, as in
  FastAPI's OAuth2 scopes guide). :func:`scoped_jwt_strategy` makes the ``get_strategy``
  dependency the standard ``get_auth_router`` login route uses.
- the *user manager*: :class:`FastAPIUsersAuthorizer` verifies the token with the backend's own
  strategy settings, then loads the user through the app's ``get_user_manager`` dependency, so
  a deleted or deactivated user is refused as soon as it reconnects.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import AsyncExitStack
from typing import Any

from fastapi import HTTPException
from fastapi_users import FastAPIUsers, exceptions
from fastapi_users.authentication import AuthenticationBackend, JWTStrategy
from fastapi_users.jwt import SecretType, generate_jwt
from pydantic import SecretStr
from starlette.requests import HTTPConnection, Request

from ..dependencies import plan_handler, solve
from .authorizer import BEARER_SCHEMES, BearerAuthenticator
from .challenges import invalid_token
from .jwt_authorizer import JWTAuthorizer
from .principal import Principal, parse_scopes

#: Where a user's granted scopes come from: the name of an attribute (a column holding a
#: space-separated string or a list), or a function of the user (sync or async).
ScopesSource = str | Callable[[Any], Iterable[str] | Awaitable[Iterable[str]]]

DEFAULT_AUDIENCE = ["fastapi-users:auth"]


async def granted_scopes(user: Any, source: ScopesSource) -> frozenset[str]:
    """The scopes ``user`` is granted, read from ``source``."""
    if isinstance(source, str):
        return parse_scopes(getattr(user, source, None))
    value = source(user)
    if inspect.isawaitable(value):
        value = await value
    return parse_scopes(list(value))


class ScopedJWTStrategy(JWTStrategy[Any, Any]):
    """fastapi-users' ``JWTStrategy`` that writes the user's scopes into the token.

    With ``requested`` (the scopes a login asked for) the token carries exactly those, which
    must all be granted to the user; a request for more is refused with 400 ``invalid_scope``
    (RFC 6749 section 5.2). Without it the token carries every granted scope.
    """

    def __init__(
        self,
        secret: SecretType,
        lifetime_seconds: int | None,
        *,
        scopes: ScopesSource = "scopes",
        requested: Iterable[str] | None = None,
        scope_claim: str = "scope",
        token_audience: list[str] | None = None,
        algorithm: str = "HS256",
        public_key: SecretType | None = None,
    ) -> None:
        super().__init__(
            secret,
            lifetime_seconds,
            token_audience=list(token_audience or DEFAULT_AUDIENCE),
            algorithm=algorithm,
            public_key=public_key,
        )
        self.scopes = scopes
        self.requested = None if requested is None else list(dict.fromkeys(requested))
        self.scope_claim = scope_claim

    async def token_scopes(self, user: Any) -> list[str]:
        granted = await granted_scopes(user, self.scopes)
        if self.requested is None:
            return sorted(granted)
        refused = [scope for scope in self.requested if scope not in granted]
        if refused:
            raise HTTPException(
                status_code=400,
                detail={
                    "code": "invalid_scope",
                    "reason": f"The user is not granted the scopes {' '.join(refused)}.",
                },
            )
        return self.requested

    async def write_token(self, user: Any) -> str:
        data = {
            "sub": str(user.id),
            "aud": self.token_audience,
            self.scope_claim: " ".join(await self.token_scopes(user)),
        }
        return generate_jwt(data, self.encode_key, self.lifetime_seconds, algorithm=self.algorithm)


async def requested_scopes(connection: HTTPConnection) -> list[str] | None:
    """The scopes a login form asks for in its ``scope`` field; None if it names none.

    Only fastapi-users' login route is read: the strategy is a dependency of every route that
    needs the current user, and reading the body of another route (an upload it streams
    itself) would consume it.
    """
    if not isinstance(connection, Request) or connection.method != "POST":
        return None
    route = connection.scope.get("route")
    name = getattr(route, "name", None)
    if not (name.endswith(".login") if name else connection.url.path.endswith("/login")):
        return None
    content_type = connection.headers.get("content-type", "")
    if not content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        return None
    form = await connection.form()  # FastAPI has parsed it already; Starlette caches it
    value = form.get("scope")
    if not isinstance(value, str) or not value.split():
        return None
    return value.split()


def scoped_jwt_strategy(
    secret: SecretType,
    lifetime_seconds: int | None,
    *,
    scopes: ScopesSource = "scopes",
    scope_claim: str = "scope",
    token_audience: list[str] | None = None,
    algorithm: str = "HS256",
    public_key: SecretType | None = None,
) -> Callable[[HTTPConnection], Awaitable[ScopedJWTStrategy]]:
    """A ``get_strategy`` dependency for ``AuthenticationBackend`` that issues scoped tokens.

    The login route of ``fastapi_users.get_auth_router(backend)`` then honours the login
    form's ``scope`` field; everything else about fastapi-users stays as it is.
    """

    async def get_scoped_jwt_strategy(connection: HTTPConnection) -> ScopedJWTStrategy:
        return ScopedJWTStrategy(
            secret,
            lifetime_seconds,
            scopes=scopes,
            requested=await requested_scopes(connection),
            scope_claim=scope_claim,
            token_audience=token_audience,
            algorithm=algorithm,
            public_key=public_key,
        )

    return get_scoped_jwt_strategy


class FastAPIUsersAuthorizer(BearerAuthenticator):
    """Accepts the JWTs a ``FastAPIUsers`` setup issues, and loads their user.

    Args:
        fastapi_users: the app's ``FastAPIUsers`` object.
        backend: the authentication backend whose tokens to accept (default: the first one
            with a JWT strategy).
        load_user: look the user up with the app's user manager on every new connection, and
            refuse users that no longer exist or are inactive (and unverified ones with
            ``verified=True``). The user is then ``principal.user``.
        scopes: where the user's scopes are (as for :class:`ScopedJWTStrategy`); when given
            and ``load_user`` is on, a token's scopes are narrowed to those the user still
            has, so revoking a scope takes effect on the next connection.
        leeway: seconds of clock skew tolerated on the token's expiry.
    """

    def __init__(
        self,
        fastapi_users: FastAPIUsers[Any, Any],
        backend: AuthenticationBackend[Any, Any] | None = None,
        *,
        load_user: bool = True,
        active: bool = True,
        verified: bool = False,
        scopes: ScopesSource | None = None,
        scope_claim: str = "scope",
        leeway: float = 0,
        allow_query_token: bool = True,
        token_url: str | None = None,
    ) -> None:
        self.fastapi_users = fastapi_users
        self.backends = [backend] if backend is not None else fastapi_users.authenticator.backends
        self.load_user = load_user
        self.active = active
        self.verified = verified
        self.scopes = scopes
        self.scope_claim = scope_claim
        self.leeway = leeway
        self.allow_query_token = allow_query_token
        self.token_url = token_url
        self._jwt: JWTAuthorizer | None = None
        self._user_manager = plan_handler(
            fastapi_users.get_user_manager, path_params=(), allow_event=False
        )

    async def verify(self, token: str, connection: HTTPConnection) -> Principal:
        checker = self._jwt or await self._jwt_authorizer(connection)
        principal = await checker.verify(token, connection)
        if not self.load_user:
            return principal
        async with AsyncExitStack() as stack:
            manager = await solve(
                self._user_manager, event=None, params={}, context=[connection], stack=stack
            )
            try:
                user = await manager.get(manager.parse_id(principal.subject))
            except (exceptions.UserNotExists, exceptions.InvalidID):
                raise invalid_token("The access token's user does not exist.") from None
            if self.active and not user.is_active:
                raise invalid_token("The access token's user is inactive.")
            if self.verified and not user.is_verified:
                raise invalid_token("The access token's user is not verified.")
            scopes = principal.scopes
            if self.scopes is not None:
                scopes = scopes & await granted_scopes(user, self.scopes)
        return dataclasses.replace(principal, user=user, scopes=scopes)

    async def _jwt_authorizer(self, connection: HTTPConnection) -> JWTAuthorizer:
        """Verify tokens exactly as the backend's own JWT strategy would (worked out once)."""
        for backend in self.backends:
            plan = plan_handler(backend.get_strategy, path_params=(), allow_event=False)
            async with AsyncExitStack() as stack:
                strategy = await solve(
                    plan, event=None, params={}, context=[connection], stack=stack
                )
            if isinstance(strategy, JWTStrategy):
                key = strategy.decode_key
                self._jwt = JWTAuthorizer(
                    key=key.get_secret_value() if isinstance(key, SecretStr) else key,
                    algorithms=[strategy.algorithm],
                    audience=strategy.token_audience,
                    leeway=self.leeway,
                    scope_claim=getattr(strategy, "scope_claim", self.scope_claim),
                    require_expiry=strategy.lifetime_seconds is not None,
                    allow_query_token=self.allow_query_token,
                )
                return self._jwt
        raise TypeError(
            "FastAPIUsersAuthorizer needs an authentication backend with a JWT strategy "
            "(JWTStrategy or ScopedJWTStrategy)."
        )

    def security_schemes(self) -> Mapping[str, Mapping[str, Any]]:
        """Bearer tokens; with ``token_url``, also the OAuth2 password flow that issues them."""
        schemes: dict[str, Mapping[str, Any]] = dict(BEARER_SCHEMES)
        if self.token_url is not None:
            schemes["oauth2Password"] = {
                "type": "oauth2",
                "description": "Log in with e-mail and password; ask for scopes in the form's "
                "`scope` field.",
                "flows": {"password": {"tokenUrl": self.token_url, "availableScopes": {}}},
            }
        return schemes
