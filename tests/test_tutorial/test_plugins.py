"""The example plugin of docs/writing-a-broker-plugin.md registers and passes the suite."""

from __future__ import annotations

import pluggy

from docs_src.plugins import plugin
from docs_src.plugins.test_local_backend import TestLocalBackend
from fastapi_streaming.brokers import hookspecs

__all__ = ["TestLocalBackend"]  # collected here: the conformance suite on the example backend


def test_the_hook_offers_the_local_scheme() -> None:
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    manager.register(plugin)
    manager.check_pending()
    (backends,) = manager.hook.fastapi_streaming_backends()
    backend = backends["local"]("local://")
    assert isinstance(backend, plugin.LocalBackend)
