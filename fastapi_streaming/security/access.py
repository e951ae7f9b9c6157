"""Deciding access: the principal of a connection against the scopes of what it touches.

Every transport asks the same question through ``StreamingAPI.authorize(connection,
accesses)``: may this client use all of these (topic, mode) pairs? The answer is all or
nothing: a request touching several topics needs every scope of every one of them, and a
partly authorised request is refused whole, naming the scopes that are missing.

A scope may name parameters of its topic's address (``rooms:{room}:read`` on
``/rooms/{room}``): an :class:`Access` carries the concrete address's parameters, and needs the
scope with them filled in (``rooms:42:read``), so a token for room 42 cannot read room 43.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from starlette.requests import HTTPConnection

from ..errors import StreamingError, Unauthorized, Unavailable
from .authorizer import Authenticator
from .challenges import insufficient_scope, invalid_token, missing_credentials
from .principal import Principal

if TYPE_CHECKING:
    from ..topics import Mode, Topic


class Access(tuple["Topic", "Mode"]):
    """What a client asks to do: a (topic, mode) pair, which also carries the parameters of
    the concrete address (``params``), needed when a scope names them.

    Still a pair, so access controls written for ``(topic, mode)`` pairs keep working.
    """

    params: Mapping[str, Any] | None

    def __new__(cls, topic: Topic, mode: Mode, params: Mapping[str, Any] | None = None) -> Access:
        access = super().__new__(cls, (topic, mode))
        access.params = params
        return access


_PLACEHOLDER = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)}")

#: Where a connection's principal is kept, so a socket is authenticated once, not per message.
SCOPE_KEY = "fastapi_streaming.principal"


class _Anonymous:
    """What the cache holds for a connection that sent no credentials."""


_ANONYMOUS = _Anonymous()


def required_scopes(accesses: Sequence[tuple[Topic, Mode]]) -> list[str]:
    """Every scope the accesses need, each once, in the order the topics list them, with the
    address parameters they name filled in (for an :class:`Access`)."""
    scopes: dict[str, None] = {}
    for access in accesses:
        topic, mode = access
        params = access.params if isinstance(access, Access) else None
        operation = topic.operation(mode)
        if operation is not None:
            scopes.update(
                dict.fromkeys(fill_scope(scope, topic, params) for scope in operation.scopes)
            )
    return list(scopes)


def fill_scope(scope: str, topic: Topic, params: Mapping[str, Any] | None) -> str:
    """``rooms:{room}:read`` for the address ``/rooms/42`` is ``rooms:42:read``.

    Without the parameters (or for a name the address lacks) the placeholder stays, and only
    a principal holding that literal scope has it.
    """
    if params is None or "{" not in scope:
        return scope

    def value(found: re.Match[str]) -> str:
        name = found.group(1)
        if name not in params or name not in topic.convertors:
            return found.group(0)
        return str(topic.convertors[name].to_string(params[name]))

    return _PLACEHOLDER.sub(value, scope)


def scope_parameters(scope: str) -> set[str]:
    """The address parameters a scope names."""
    return set(_PLACEHOLDER.findall(scope))


def security_required(accesses: Sequence[tuple[Topic, Mode]]) -> bool:
    """True when an operation names security schemes (a document's ``security``): then it
    needs an authenticated client even without scopes."""
    for topic, mode in accesses:
        operation = topic.operation(mode)
        if operation is not None and operation.security:
            return True
    return False


class AccessControl:
    """The authorizers of one streaming API and its rule for topics without scopes."""

    def __init__(
        self,
        authorizers: Sequence[Authenticator],
        *,
        require_auth: bool = False,
        realm: str | None = None,
    ) -> None:
        self.authorizers = tuple(authorizers)
        self.require_auth = require_auth
        self.realm = realm

    async def principal(self, connection: HTTPConnection) -> Principal | None:
        """The connection's principal (None if anonymous), worked out once per connection.

        A refusal is remembered too, so every message on a socket with a bad token gets the
        same answer without verifying the token again.
        """
        cache = connection.scope.setdefault(SCOPE_KEY, {})
        known = cache.get(id(self))
        if known is None:
            try:
                known = await self._authenticate(connection) or _ANONYMOUS
            except Unavailable:
                raise  # the issuer's keys could not be fetched: try again next time
            except StreamingError as error:
                known = error
            cache[id(self)] = known
        if isinstance(known, StreamingError):
            raise known
        if isinstance(known, Principal):
            if known.expired:
                raise invalid_token("The access token has expired.", self.realm)
            return known
        return None

    async def _authenticate(self, connection: HTTPConnection) -> Principal | None:
        """Ask each authorizer in turn; the first principal wins.

        When every authorizer that saw credentials refused them, the first refusal is the
        answer: a token that is bad for all of them is bad.
        """
        refusal: Unauthorized | None = None
        for authorizer in self.authorizers:
            try:
                principal = await authorizer.authenticate(connection)
            except Unauthorized as error:
                refusal = refusal or error
                continue
            if principal is not None:
                return principal
        if refusal is not None:
            raise refusal
        return None

    async def check(
        self, connection: HTTPConnection, accesses: Sequence[tuple[Topic, Mode]]
    ) -> Principal | None:
        """The principal allowed to make every access, or the refusal as an error.

        Bad credentials are refused even on public topics: a client whose token expired
        learns it at once instead of silently losing its scopes. An empty ``accesses`` (the
        handshake of the multiplexed socket) only checks what ``require_auth`` demands.
        """
        needed = required_scopes(accesses)
        protected = bool(needed) or self.require_auth or security_required(accesses)
        try:
            principal = await self.principal(connection)
        except StreamingError:
            if protected or accesses:
                raise
            return None  # a multiplexed socket opens; its subscriptions get the error
        if principal is None:
            if protected:
                raise missing_credentials(self.realm, needed)
            return None
        missing = principal.missing(needed)
        if missing:
            raise insufficient_scope(needed, missing, self.realm)
        return principal
