"""The backends that come with fastapi-streaming, registered through the public plugin hook.

Each factory imports its client library only when it is used, so an app on ``memory://`` needs
none of them, and a missing one is reported with the extra that installs it.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping

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


#: The client library each built-in backend needs, and the extra that installs it.
DRIVERS: dict[Callable[[str], BroadcastBackend], tuple[str, str]] = {
    redis: ("redis", "redis"),
    redis_stream: ("redis", "redis"),
    postgres: ("asyncpg", "postgres"),
    kafka: ("aiokafka", "kafka"),
}


def missing_driver(factory: object) -> str | None:
    """How to install what a built-in backend lacks, or None when it can run.

    Looks the library up without importing it (``fastapi-streaming backends`` stays quick).
    """
    driver = DRIVERS.get(factory)  # type: ignore[call-overload]
    if driver is None:
        return None
    module, extra = driver
    try:
        found = importlib.util.find_spec(module) is not None
    except ValueError:  # in sys.modules without a spec: blocked
        found = False
    return None if found else f'driver not installed: pip install "fastapi-streaming[{extra}]"'


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
