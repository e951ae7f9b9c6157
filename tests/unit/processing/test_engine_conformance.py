"""The processing conformance suite on the embedded engine, on memory:// (one process)."""

from __future__ import annotations

from fastapi_streaming.testing.processing_conformance import ProcessingConformance


class TestEmbeddedOnMemory(ProcessingConformance):
    engine = "embedded"
    url = "memory://"
