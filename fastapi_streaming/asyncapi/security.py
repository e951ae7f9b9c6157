"""The security schemes a document describes, and how they are completed for AsyncAPI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from ..security.authorizer import BEARER_SCHEMES, security_schemes

if TYPE_CHECKING:
    from .info import AsyncAPISource

#: Scheme types whose requirements may list scopes.
SCOPED_SCHEME_TYPES = ("oauth2", "openIdConnect")


def security_schemes_of(
    source: AsyncAPISource, needed: bool, base_url: str, scopes: list[str]
) -> dict[str, dict[str, Any]]:
    """The schemes given to the constructor, else those of the authorizers, else bearer.

    Schemes that authorizers describe are completed so the document stays valid: OAuth2 flow
    URLs become absolute (AsyncAPI requires it; a login route is usually given as a path) and
    every scope a topic needs is listed among the flows' ``availableScopes``.
    """
    given = source.info.security_schemes
    if given is not None:
        return {name: dict(scheme) for name, scheme in given.items()}
    authorizers = tuple(source.access.authorizers)
    if authorizers:
        described = security_schemes(authorizers)
        return {name: completed(scheme, base_url, scopes) for name, scheme in described.items()}
    if needed:
        return {name: dict(scheme) for name, scheme in BEARER_SCHEMES.items()}
    return {}


def completed(scheme: dict[str, Any], base_url: str, scopes: list[str]) -> dict[str, Any]:
    flows = scheme.get("flows")
    if not isinstance(flows, dict):
        return scheme
    completed = {}
    for name, flow in flows.items():
        flow = dict(flow)
        for key in ("authorizationUrl", "tokenUrl", "refreshUrl"):
            if isinstance(flow.get(key), str):
                flow[key] = urljoin(base_url.rstrip("/") + "/", flow[key])
        available = dict(flow.get("availableScopes") or {})
        for scope in scopes:
            available.setdefault(scope, "Needed by some of this API's topics.")
        flow["availableScopes"] = available
        completed[name] = flow
    return {**scheme, "flows": completed}
