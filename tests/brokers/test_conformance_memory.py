"""The in-process backend passes the conformance suite, which shows the suite itself works."""

from __future__ import annotations

from fastapi_streaming.brokers.memory import MemoryBackend
from fastapi_streaming.testing import BackendConformance


class TestMemoryBackend(BackendConformance):
    url = "memory://"
    factory = MemoryBackend
    instances_share_broker = False  # each instance is its own little broker
    quiet_seconds = 0.1
