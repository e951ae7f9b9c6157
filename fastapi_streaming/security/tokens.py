"""Where a client's access token is: the ``Authorization`` header or ``access_token`` query.

Browsers' ``EventSource`` and ``WebSocket`` cannot set headers, so RFC 6750 section 2.3's URI
query parameter is accepted too. A query string ends up in server and proxy logs, which is why
:mod:`fastapi_streaming.security.redaction` scrubs it from ours.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from .challenges import InvalidRequest

QUERY_PARAMETER = "access_token"


def bearer_token(connection: HTTPConnection, *, allow_query: bool = True) -> str | None:
    """The bearer token the client sent, or None if it sent none.

    An ``Authorization`` header of another scheme (``Basic``) is not a bearer token. A client
    that sends the token both ways, or the query parameter twice, is refused (RFC 6750: one
    method per request), so two differing tokens can never be mixed up.
    """
    header = connection.headers.get("authorization")
    from_header: str | None = None
    if header is not None:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() == "bearer":
            from_header = value.strip()
            if not from_header:
                raise InvalidRequest("The Authorization header names Bearer but has no token.")
    from_query: str | None = None
    if allow_query:
        values = connection.query_params.getlist(QUERY_PARAMETER)
        if len(values) > 1:
            raise InvalidRequest("Send the access_token query parameter once.")
        if values:
            from_query = values[0].strip() or None
    if from_header is not None and from_query is not None:
        raise InvalidRequest(
            "Send the access token in the Authorization header or the access_token query "
            "parameter, not both."
        )
    return from_header if from_header is not None else from_query
