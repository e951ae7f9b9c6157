"""Security: who a client is (authorizers) and what it may touch (scopes on topic modes).

``StreamingAPI(authorizer=...)`` takes one authenticator (an :class:`Authenticator`: who the
client is) or several. :class:`JWTAuthorizer` needs
PyJWT (``pip install "fastapi-streaming[jwt]"``); the fastapi-users integration lives in
:mod:`fastapi_streaming.security.users` (``pip install "fastapi-streaming[users]"``). Both are
imported only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports
from .access import AccessControl, required_scopes
from .authorizer import (
    Authenticator,
    Authorizer,
    BearerAuthenticator,
    BearerAuthorizer,
    security_schemes,
)
from .challenges import InvalidRequest, insufficient_scope, invalid_token, missing_credentials
from .plugins import UnknownAuthorizerError, available_authorizers, create_authorizer
from .principal import Principal, parse_scopes
from .redaction import RedactTokens, install_redaction, redact
from .tokens import bearer_token

if TYPE_CHECKING:
    from .jwt_authorizer import JWTAuthorizer
    from .users import FastAPIUsersAuthorizer, ScopedJWTStrategy, scoped_jwt_strategy

# Imported on first use: their libraries are optional extras.
__getattr__ = lazy_exports(
    __name__,
    {
        "JWTAuthorizer": "jwt_authorizer",
        "FastAPIUsersAuthorizer": "users",
        "ScopedJWTStrategy": "users",
        "scoped_jwt_strategy": "users",
    },
)


__all__ = [
    "AccessControl",
    "Authenticator",
    "Authorizer",
    "BearerAuthenticator",
    "BearerAuthorizer",
    "FastAPIUsersAuthorizer",
    "InvalidRequest",
    "JWTAuthorizer",
    "Principal",
    "RedactTokens",
    "ScopedJWTStrategy",
    "UnknownAuthorizerError",
    "available_authorizers",
    "bearer_token",
    "create_authorizer",
    "install_redaction",
    "insufficient_scope",
    "invalid_token",
    "missing_credentials",
    "parse_scopes",
    "redact",
    "required_scopes",
    "scoped_jwt_strategy",
    "security_schemes",
]
