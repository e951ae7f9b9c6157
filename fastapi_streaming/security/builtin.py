"""The authorizers that come with fastapi-streaming, registered through the public hook."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..hooks import hookimpl
from .authorizer import Authenticator
from .hookspecs import AuthorizerFactory


def jwt_authorizer(**options: Any) -> Authenticator:
    from .jwt_authorizer import JWTAuthorizer

    return JWTAuthorizer(**options)


def fastapi_users_authorizer(**options: Any) -> Authenticator:
    from .users import FastAPIUsersAuthorizer

    return FastAPIUsersAuthorizer(**options)


@hookimpl
def fastapi_streaming_authorizers() -> Mapping[str, AuthorizerFactory]:
    return {"jwt": jwt_authorizer, "fastapi-users": fastapi_users_authorizer}
