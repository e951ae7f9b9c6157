"""The plugin manager: broker backends by URL scheme, authorizers and processing engines by
name, from plugins.

It sits at the package root, above the brokers and security it loads hooks for. The built-in
backends and authorizers register through the same hook as separately installed plugins, which
announce themselves in the ``fastapi_streaming`` entry-point group. Entry points are loaded when
a manager is built, never at import time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import cast
from urllib.parse import urlsplit

import pluggy
from broadcaster import BroadcastBackend
from pluggy import HookImpl

from .brokers import builtin, hookspecs
from .brokers.hookspecs import BackendFactory
from .hooks import PROJECT_NAME, hookimpl
from .processing import builtin as builtin_engines
from .processing import hookspecs as engine_hookspecs
from .processing.engines import (
    EngineContext,
    EngineFactory,
    ProcessingEngine,
    UnknownEngineError,
)
from .redact import scrub, secrets_in
from .security.plugins import UnknownAuthorizerError, available_authorizers, create_authorizer
from .security.plugins import register_builtin as register_authorizers

OWN_DISTRIBUTION = "fastapi-streaming"


class UnknownBackendError(ValueError):
    """No installed plugin provides a backend for the broker URL's scheme."""


class BackendConflictError(RuntimeError):
    """Two plugins claim the same URL scheme."""


@dataclass(frozen=True)
class BackendInfo:
    """A backend as the plugin system knows it: its scheme, factory and providing package."""

    scheme: str
    factory: BackendFactory
    provider: str


def get_plugin_manager() -> pluggy.PluginManager:
    """A plugin manager with the built-in backends and every installed plugin loaded."""
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    manager.register(builtin, name=f"{PROJECT_NAME}.builtin")
    manager.add_hookspecs(engine_hookspecs)
    manager.register(builtin_engines, name=f"{PROJECT_NAME}.processing.builtin")
    register_authorizers(manager)
    manager.load_setuptools_entrypoints(PROJECT_NAME)
    manager.check_pending()
    return manager


def available_backends(manager: pluggy.PluginManager | None = None) -> dict[str, BackendInfo]:
    """Every backend that can be used, keyed by URL scheme."""
    manager = manager or get_plugin_manager()
    providers = _providers(manager)
    found: dict[str, BackendInfo] = {}
    for implementation in manager.hook.fastapi_streaming_backends.get_hookimpls():
        provider = providers.get(implementation.plugin) or _provider_name(manager, implementation)
        backends = cast(Mapping[str, BackendFactory], implementation.function())
        for scheme, factory in backends.items():
            known = found.get(scheme)
            if known is not None and known.provider != provider:
                raise BackendConflictError(
                    f"Both {known.provider} and {provider} provide the {scheme!r} broker "
                    "backend; uninstall one of them."
                )
            found[scheme] = BackendInfo(scheme, factory, provider)
    return found


def create_backend(url: str, manager: pluggy.PluginManager | None = None) -> BroadcastBackend:
    """The backend for a broker URL such as ``redis://127.0.0.1:6379``.

    Error messages name the scheme only: the URL may carry a password.
    """
    scheme = urlsplit(url).scheme.lower()
    backends = available_backends(manager)
    if not scheme:
        raise UnknownBackendError(
            "The broker URL has no scheme. Write it like 'memory://' or "
            f"'redis://127.0.0.1:6379'; installed schemes: {_listing(backends)}."
        )
    info = backends.get(scheme)
    if info is None:
        raise UnknownBackendError(
            f"No broker backend for {scheme!r}. Installed schemes: {_listing(backends)}. "
            "Other brokers come as plugin packages, for example "
            "`pip install fastapi-streaming-mqtt` for mqtt://."
        )
    try:
        return info.factory(url)
    except ValueError as exc:  # a bad option; the backend may have quoted the whole URL
        raise ValueError(scrub(str(exc), secrets_in(url))) from None


def available_engines(manager: pluggy.PluginManager | None = None) -> dict[str, EngineFactory]:
    """Every processing engine that can be used, keyed by name (``"embedded"`` is built in)."""
    manager = manager or get_plugin_manager()
    found: dict[str, EngineFactory] = {}
    for implementation in manager.hook.fastapi_streaming_processing_engines.get_hookimpls():
        engines = cast(Mapping[str, EngineFactory], implementation.function())
        for name, factory in engines.items():
            if name in found and found[name] is not factory:
                raise RuntimeError(
                    f"Two plugins provide the processing engine {name!r}; uninstall one of them."
                )
            found[name] = factory
    return found


def create_engine(
    name: str, context: EngineContext, manager: pluggy.PluginManager | None = None
) -> ProcessingEngine:
    """The processing engine called ``name``, computing ``context``'s derived topics."""
    engines = available_engines(manager)
    factory = engines.get(name)
    if factory is None:
        raise UnknownEngineError(
            f"No processing engine called {name!r}. Installed: {_listing(engines)}. "
            "Engines on other stream processors come as plugin packages, for example "
            "`pip install fastapi-streaming-quix` for processing_engine='quix'."
        )
    return factory(context)


def _listing(backends: Mapping[str, object]) -> str:
    return ", ".join(sorted(backends)) or "none"


def _providers(manager: pluggy.PluginManager) -> dict[object, str]:
    """Which distribution registered each entry-point plugin, as ``name version``."""
    providers: dict[object, str] = {}
    for plugin, distribution in manager.list_plugin_distinfo():
        providers[plugin] = f"{distribution.project_name} {distribution.version}"
    return providers


def _provider_name(manager: pluggy.PluginManager, implementation: HookImpl) -> str:
    """Built-ins are ours; a plugin registered in code is known by its registered name."""
    if implementation.plugin is builtin:
        return _own_provider()
    return f"plugin {manager.get_name(implementation.plugin)!r}"


def _own_provider() -> str:
    try:
        return f"{OWN_DISTRIBUTION} {metadata.version(OWN_DISTRIBUTION)}"
    except metadata.PackageNotFoundError:  # running from a source tree
        return OWN_DISTRIBUTION


__all__ = [
    "PROJECT_NAME",
    "BackendConflictError",
    "BackendInfo",
    "UnknownAuthorizerError",
    "UnknownBackendError",
    "UnknownEngineError",
    "available_authorizers",
    "available_backends",
    "available_engines",
    "create_authorizer",
    "create_backend",
    "create_engine",
    "get_plugin_manager",
    "hookimpl",
]
