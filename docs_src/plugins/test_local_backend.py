"""The plugin's tests: the whole conformance suite, against the backend's real server."""

from __future__ import annotations

from docs_src.plugins.plugin import create_backend
from fastapi_streaming.testing import InProcessConformance


# A backend that talks to a broker server subclasses BackendConformance instead, and gives the
# suite that server's native client (native_publish) and a private server to restart
# (broker_control). This example keeps its broker in the process, like memory://, so it runs
# the in-process variant, which tests what such a backend promises in their place.
class TestLocalBackend(InProcessConformance):
    url = "local://"
    factory = create_backend
