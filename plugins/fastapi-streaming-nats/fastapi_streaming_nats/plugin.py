"""The plugin entry point: registers the ``nats`` URL scheme."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi_streaming import hookimpl
from fastapi_streaming.brokers.hookspecs import BackendFactory

from fastapi_streaming_nats.backend import NATSBackend


@hookimpl
def fastapi_streaming_backends() -> Mapping[str, BackendFactory]:
    return {"nats": NATSBackend}
