"""Only administrators: every console route needs a principal holding the admin scope."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from ..security.access import AccessControl
from ..security.challenges import insufficient_scope, missing_credentials
from ..security.principal import Principal


class AdminGuard:
    """Checks the admin scope with the streaming API's own authorizers (a token in the
    ``Authorization`` header, or in ``access_token`` for the page and its event stream)."""

    def __init__(self, access: AccessControl, scope: str) -> None:
        self.access = access
        self.scope = scope

    async def check(self, connection: HTTPConnection) -> Principal:
        """The administrator, or the 401/403 error (a :class:`StreamingError`) to answer."""
        principal = await self.access.principal(connection)
        if principal is None:
            raise missing_credentials(self.access.realm, [self.scope])
        if self.scope not in principal.scopes:
            raise insufficient_scope([self.scope], [self.scope], self.access.realm)
        return principal
