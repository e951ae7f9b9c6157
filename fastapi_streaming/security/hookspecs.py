"""The plugin hook for authorizers, in the ``fastapi_streaming`` pluggy project.

Plugins add authorizers the way they add broker backends: by name, through a hook, found in
the ``fastapi_streaming`` entry-point group. An installed plugin never authorizes anything by
itself: an app picks an authorizer by name (``create_authorizer("keycloak", ...)``), so
installing a package cannot open or close anyone's topics.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ..hooks import hookspec

if TYPE_CHECKING:
    from .authorizer import Authenticator

#: Builds an authorizer from the keyword options the app passes to ``create_authorizer``.
AuthorizerFactory = Callable[..., "Authenticator"]


@hookspec
def fastapi_streaming_authorizers() -> Mapping[str, AuthorizerFactory]:  # type: ignore[empty-body]
    """Return the authorizers this plugin provides, keyed by name (``"jwt"``, ``"keycloak"``).

    Each value is called with the options the application gives to
    :func:`fastapi_streaming.security.create_authorizer` and returns an object with an
    ``async authenticate(connection) -> Principal | None`` method.
    """
