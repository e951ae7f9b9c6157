"""The plugin's tests: the whole conformance suite, against the backend's real server."""

from __future__ import annotations

import pytest

from docs_src.plugins.plugin import create_backend
from fastapi_streaming.testing import BackendConformance, NativePublish


class TestLocalBackend(BackendConformance):
    url = "local://"
    factory = create_backend
    instances_share_broker = False  # in-process: two instances do not see each other

    @pytest.fixture
    def native_publish(self) -> NativePublish | None:
        # A real broker's tests return a coroutine function that writes raw bytes with the
        # broker's own client, as another system on the backbone would. In-process, there is
        # no such client, so those two tests are skipped.
        return None
