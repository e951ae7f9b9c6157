"""The plugin entry point: registers the ``mqtt`` and ``mqtts`` URL schemes."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi_streaming import hookimpl
from fastapi_streaming.brokers.hookspecs import BackendFactory

from fastapi_streaming_mqtt.backend import MQTTBackend


@hookimpl
def fastapi_streaming_backends() -> Mapping[str, BackendFactory]:
    return {"mqtt": MQTTBackend, "mqtts": MQTTBackend}
