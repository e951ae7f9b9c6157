"""A broker plugin in one module: the hook returns backend factories keyed by URL scheme."""

from __future__ import annotations

from collections.abc import Mapping

from broadcaster import BroadcastBackend
from broadcaster._backends.memory import MemoryBackend

from fastapi_streaming import hookimpl
from fastapi_streaming.brokers.hookspecs import BackendFactory


class LocalBackend(MemoryBackend):
    """Stands in for your backend class: a URL and broadcaster's six async methods."""


def create_backend(url: str) -> BroadcastBackend:
    return LocalBackend(url)


@hookimpl
def fastapi_streaming_backends() -> Mapping[str, BackendFactory]:
    return {"local": create_backend}
