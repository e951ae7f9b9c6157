"""The plugin entry point: registers the ``amqp`` and ``amqps`` URL schemes."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi_streaming import hookimpl
from fastapi_streaming.brokers.hookspecs import BackendFactory

from fastapi_streaming_amqp.backend import AMQPBackend


@hookimpl
def fastapi_streaming_backends() -> Mapping[str, BackendFactory]:
    return {"amqp": AMQPBackend, "amqps": AMQPBackend}
