"""Finding authorizers by name through the plugin manager, built-ins included.

:func:`fastapi_streaming.plugins.get_plugin_manager` builds the manager an app uses; this layer
sits below it, so without a manager it builds one of its own that knows only authorizers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import pluggy

from ..hooks import PROJECT_NAME
from . import builtin
from .authorizer import Authenticator
from .hookspecs import AuthorizerFactory


class UnknownAuthorizerError(ValueError):
    """No installed plugin provides an authorizer of that name."""


def available_authorizers(
    manager: pluggy.PluginManager | None = None,
) -> dict[str, AuthorizerFactory]:
    """Every authorizer factory that can be used, keyed by name."""
    if manager is None:
        manager = _authorizer_manager()
    found: dict[str, AuthorizerFactory] = {}
    for implementation in manager.hook.fastapi_streaming_authorizers.get_hookimpls():
        factories = cast(Mapping[str, AuthorizerFactory], implementation.function())
        for name, factory in factories.items():
            if name in found and found[name] is not factory:
                raise RuntimeError(f"Two plugins provide the authorizer {name!r}.")
            found[name] = factory
    return found


def create_authorizer(
    name: str, manager: pluggy.PluginManager | None = None, **options: Any
) -> Authenticator:
    """The authorizer called ``name`` (``"jwt"``, ``"fastapi-users"`` or a plugin's), built
    with ``options``."""
    factories = available_authorizers(manager)
    factory = factories.get(name)
    if factory is None:
        raise UnknownAuthorizerError(
            f"No authorizer called {name!r}; installed: {', '.join(sorted(factories)) or 'none'}."
        )
    return factory(**options)


def _authorizer_manager() -> pluggy.PluginManager:
    """A manager with the built-in authorizers and every installed plugin's."""
    manager = pluggy.PluginManager(PROJECT_NAME)
    register_builtin(manager)
    manager.load_setuptools_entrypoints(PROJECT_NAME)
    return manager


def register_builtin(manager: pluggy.PluginManager) -> None:
    """Add the hook specification and the built-in authorizers to a plugin manager."""
    from . import hookspecs

    manager.add_hookspecs(hookspecs)
    if not manager.is_registered(builtin):
        manager.register(builtin, name="fastapi_streaming.security.builtin")
