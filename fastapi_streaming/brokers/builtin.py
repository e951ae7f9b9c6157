"""The backends that come with fastapi-streaming, registered through the public plugin hook.

Each factory imports its client library only when it is used, so an app on ``memory://`` needs
none of them, and a missing one is reported with the extra that installs it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from broadcaster import BroadcastBackend

from ..hooks import hookimpl
from .hookspecs import BackendFactory


class MissingDependencyError(ImportError):
    """A built-in backend's client library is not installed."""


def _require(module: str, extra: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(
            f"This broker backend needs the {module!r} package: "
            f'pip install "fastapi-streaming[{extra}]"'
        ) from None


def memory(url: str) -> BroadcastBackend:
    from .memory import MemoryBackend

    return MemoryBackend(url)


def redis(url: str) -> BroadcastBackend:
    _require("redis", "redis")
    from .redis import RedisBackend

    return RedisBackend(url)


def redis_stream(url: str) -> BroadcastBackend:
    _require("redis", "redis")
    from .redis_stream import RedisStreamBackend

    return RedisStreamBackend(url)


def postgres(url: str) -> BroadcastBackend:
    _require("asyncpg", "postgres")
    from .postgres import PostgresBackend

    return PostgresBackend(url)


def kafka(url: str) -> BroadcastBackend:
    _require("aiokafka", "kafka")
    from .kafka import KafkaBackend

    return KafkaBackend(url)


@hookimpl
def fastapi_streaming_backends() -> Mapping[str, BackendFactory]:
    return {
        "memory": memory,
        "redis": redis,
        "rediss": redis,
        "redis-stream": redis_stream,
        "rediss-stream": redis_stream,
        "postgres": postgres,
        "postgresql": postgres,
        "kafka": kafka,
    }
