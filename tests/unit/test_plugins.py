from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping

import pluggy
import pytest

from fastapi_streaming import hookimpl
from fastapi_streaming.brokers.hookspecs import BackendFactory
from fastapi_streaming.brokers.memory import MemoryBackend
from fastapi_streaming.brokers.redis import RedisBackend
from fastapi_streaming.cli import main
from fastapi_streaming.plugins import (
    BackendConflictError,
    UnknownBackendError,
    available_backends,
    create_backend,
    get_plugin_manager,
)


class CarrierPigeonPlugin:
    """A plugin as a third-party package would write it, registered in a fixture."""

    @hookimpl
    def fastapi_streaming_backends(self) -> Mapping[str, BackendFactory]:
        return {"pigeon": MemoryBackend}


@pytest.fixture
def manager() -> pluggy.PluginManager:
    return get_plugin_manager()


def test_builtin_backends_are_registered_through_the_hook(manager: pluggy.PluginManager) -> None:
    backends = available_backends(manager)
    builtin = {
        "memory",
        "redis",
        "rediss",
        "redis-stream",
        "rediss-stream",
        "postgres",
        "postgresql",
        "kafka",
    }
    assert builtin <= set(backends)
    assert backends["redis"].provider.startswith("fastapi-streaming")


def test_installed_plugin_packages_are_found_through_entry_points(
    manager: pluggy.PluginManager,
) -> None:
    backends = available_backends(manager)
    assert backends["mqtt"].provider.startswith("fastapi-streaming-mqtt ")
    assert backends["nats"].provider.startswith("fastapi-streaming-nats ")
    assert backends["amqp"].provider.startswith("fastapi-streaming-amqp ")


def test_redis_url_gets_the_hardened_backend(manager: pluggy.PluginManager) -> None:
    assert isinstance(create_backend("redis://127.0.0.1:6379", manager), RedisBackend)


def test_a_registered_plugin_adds_its_scheme(manager: pluggy.PluginManager) -> None:
    manager.register(CarrierPigeonPlugin())
    assert isinstance(create_backend("pigeon://loft", manager), MemoryBackend)
    assert available_backends(manager)["pigeon"].scheme == "pigeon"


def test_two_plugins_claiming_one_scheme_is_an_error(manager: pluggy.PluginManager) -> None:
    class Impostor:
        @hookimpl
        def fastapi_streaming_backends(self) -> Mapping[str, BackendFactory]:
            return {"redis": MemoryBackend}

    manager.register(Impostor(), name="impostor")
    manager.register(CarrierPigeonPlugin())
    with pytest.raises(BackendConflictError, match="'redis'"):
        available_backends(manager)


def test_unknown_scheme_lists_what_is_installed(manager: pluggy.PluginManager) -> None:
    with pytest.raises(UnknownBackendError) as error:
        create_backend("zeromq://127.0.0.1:5555", manager)
    message = str(error.value)
    assert "'zeromq'" in message and "memory, mqtt" in message and "pip install" in message


def test_url_without_scheme_says_how_to_write_one(manager: pluggy.PluginManager) -> None:
    with pytest.raises(UnknownBackendError, match="has no scheme"):
        create_backend("127.0.0.1:6379", manager)


def test_errors_never_repeat_the_url_and_its_password(manager: pluggy.PluginManager) -> None:
    with pytest.raises(UnknownBackendError) as error:
        create_backend("zeromq://user:s3cret@127.0.0.1:5555", manager)
    assert "s3cret" not in str(error.value)


def test_schemes_are_case_insensitive(manager: pluggy.PluginManager) -> None:
    assert isinstance(create_backend("Memory://", manager), MemoryBackend)


def test_app_with_unknown_broker_fails_at_startup() -> None:
    from fastapi_streaming import StreamingAPI

    streaming = StreamingAPI(broker="carrier-pigeon://loft")

    async def start() -> None:
        async with streaming.running():
            pass

    import asyncio

    with pytest.raises(UnknownBackendError, match="carrier-pigeon"):
        asyncio.run(start())


def test_cli_lists_backends_with_their_packages(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backends"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["SCHEME", "PROVIDED", "BY"]
    rows = {line.split()[0]: line.split()[1] for line in lines[1:]}
    assert rows["memory"] == "fastapi-streaming" and rows["mqtt"] == "fastapi-streaming-mqtt"


def test_console_script_runs() -> None:
    script = [sys.executable, "-m", "fastapi_streaming", "backends"]
    output = subprocess.run(script, capture_output=True, text=True, check=True).stdout
    assert "redis-stream" in output


def test_health_can_ping_every_networked_builtin_backend() -> None:
    from fastapi_streaming.brokers.extensions import PingableBackend
    from fastapi_streaming.plugins import create_backend

    for url in ("redis://h", "redis-stream://h", "postgresql://h/db", "kafka://h:9092"):
        assert isinstance(create_backend(url), PingableBackend), url
    assert not isinstance(create_backend("memory://"), PingableBackend)
