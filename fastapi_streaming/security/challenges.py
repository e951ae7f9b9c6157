"""The refusals of RFC 6750 (Bearer tokens), as errors every transport knows how to answer.

RFC 6750 section 3 says what a resource server answers: a request without credentials gets a
bare ``WWW-Authenticate: Bearer`` challenge; a bad token gets ``error="invalid_token"``; a token
without the scope gets 403 and ``error="insufficient_scope"`` with the scope that is needed; a
request that is itself wrong (two tokens) gets 400 and ``error="invalid_request"``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import Forbidden, StreamingError, Unauthorized


def _quote(value: str) -> str:
    """A quoted-string for an auth-param: backslash-escape quotes and backslashes."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def challenge(
    *,
    realm: str | None = None,
    error: str | None = None,
    description: str | None = None,
    scopes: Sequence[str] = (),
) -> str:
    """A ``WWW-Authenticate`` value for the Bearer scheme."""
    params: list[str] = []
    if realm:
        params.append(f"realm={_quote(realm)}")
    if error:
        params.append(f"error={_quote(error)}")
    if description:
        # RFC 6750 limits error_description to printable ASCII without quotes or backslashes.
        safe = "".join(c for c in description if 0x20 <= ord(c) <= 0x7E and c not in '"\\')
        params.append(f"error_description={_quote(safe)}")
    if scopes:
        params.append(f"scope={_quote(' '.join(scopes))}")
    return "Bearer " + ", ".join(params) if params else "Bearer"


def missing_credentials(realm: str | None = None, scopes: Sequence[str] = ()) -> Unauthorized:
    """No token at all: 401 with a challenge that carries no error code (RFC 6750 3.1)."""
    needed = f" with the scopes {' '.join(scopes)}" if scopes else ""
    error = Unauthorized(
        f"Authentication required: send an access token{needed} in the Authorization header "
        "(Bearer) or the access_token query parameter.",
        headers={"WWW-Authenticate": challenge(realm=realm)},
    )
    error.error = "unauthorized"
    return error


def invalid_token(description: str, realm: str | None = None) -> Unauthorized:
    """A token that is malformed, badly signed, expired or meant for someone else: 401."""
    return Unauthorized(
        description,
        headers={
            "WWW-Authenticate": challenge(
                realm=realm, error="invalid_token", description=description
            )
        },
    )


class InvalidRequest(StreamingError):
    """The request carries credentials in a way the server refuses (400 ``invalid_request``)."""

    status_code = 400
    error = "invalid_request"

    def __init__(self, description: str, realm: str | None = None) -> None:
        super().__init__(
            description,
            headers={
                "WWW-Authenticate": challenge(
                    realm=realm, error="invalid_request", description=description
                )
            },
        )


def insufficient_scope(
    required: Sequence[str], missing: Sequence[str], realm: str | None = None
) -> Forbidden:
    """A valid token without every scope the request needs: 403 naming what is missing."""
    description = (
        f"The access token lacks the scopes {' '.join(missing)}; "
        f"this request needs {' '.join(required)}."
    )
    error = Forbidden(
        description,
        headers={
            "WWW-Authenticate": challenge(
                realm=realm, error="insufficient_scope", description=description, scopes=required
            )
        },
    )
    return error
