"""AMQPBackend against the real RabbitMQ on 127.0.0.1:5672 (guest/guest).

The restart tests stop and kill a RabbitMQ node of the session's own instead: its own node
name, AMQP and distribution ports, data and log folders, Erlang cookie (in its own home
folder) and epmd, so nothing of the shared node is touched. A node takes seconds to boot, so
one serves the whole session.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import pytest
from fastapi_streaming.testing import BackendConformance, BrokerControl, NativePublish
from fastapi_streaming.testing.processes import PrivateBroker, free_port

from fastapi_streaming_amqp import AMQPBackend

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/"

#: Where Debian keeps RabbitMQ's own start script (``/usr/sbin``'s switches user and logs).
RABBITMQ_SCRIPTS = Path(os.environ.get("RABBITMQ_SCRIPTS", "/usr/lib/rabbitmq/bin"))


def _binary(name: str, *folders: Path) -> str | None:
    for folder in folders:
        if (folder / name).is_file():
            return str(folder / name)
    return shutil.which(name)


@pytest.fixture(scope="session")
def private_rabbitmq() -> Iterator[PrivateBroker]:
    """A RabbitMQ node of this session's own, with an epmd of its own, on spare ports."""
    server = _binary("rabbitmq-server", RABBITMQ_SCRIPTS)
    epmd = _binary("epmd", *Path("/usr/lib/erlang").glob("erts-*/bin"))
    if server is None or epmd is None:
        pytest.skip(
            "no rabbitmq-server or epmd for the restart tests: apt-get install rabbitmq-server"
        )
    home = Path(tempfile.mkdtemp(prefix="fastapi-streaming-rabbitmq-"))
    epmd_port, amqp_port, dist_port = free_port(), free_port(), free_port()
    (home / "rabbitmq.conf").write_text(f"listeners.tcp.1 = 127.0.0.1:{amqp_port}\n")
    (home / "enabled_plugins").write_text("[].\n")  # no management plugin on a shared port
    (home / "rabbitmq-env.conf").write_text("")  # not the machine's /etc/rabbitmq one
    name_server = PrivateBroker(
        "epmd",
        [epmd, "-port", str(epmd_port), "-address", "127.0.0.1"],
        port=epmd_port,
        url="",
        log_dir=home,
    )
    env = {
        "HOME": str(home),  # Erlang keeps the node's cookie there
        "ERL_EPMD_PORT": str(epmd_port),
        "RABBITMQ_CONF_ENV_FILE": str(home / "rabbitmq-env.conf"),
        "RABBITMQ_NODENAME": f"conformance-{uuid.uuid4().hex[:8]}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(amqp_port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
        "RABBITMQ_LOG_BASE": str(home / "log"),
        "RABBITMQ_LOGS": "-",
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        # Exec the Erlang VM in place of the script, so the process stopped is the node itself.
        "RUNNING_UNDER_SYSTEMD": "true",
    }
    node = PrivateBroker(
        "rabbitmq",
        [server],
        port=amqp_port,
        url=f"amqp://guest:guest@127.0.0.1:{amqp_port}/",
        env=env,
        cwd=home,
        log_dir=home,
        start_timeout=120,
        stop_timeout=60,
    )
    try:
        name_server.start_now()
        yield node.start_now()
    finally:
        node.stop_now()
        name_server.stop_now()
        shutil.rmtree(home, ignore_errors=True)


class TestAMQPBackend(BackendConformance):
    url = RABBITMQ
    factory = AMQPBackend

    @pytest.fixture
    def broker_control(self, private_rabbitmq: PrivateBroker) -> BrokerControl:
        return private_rabbitmq.start_now()  # a no-op unless an earlier test left it down

    @pytest.fixture
    def native_publish(self) -> NativePublish:
        """Publish as another AMQP application would, to the same exchange."""

        async def publish(channel: str, payload: bytes) -> None:
            connection = await aio_pika.connect(RABBITMQ)
            async with connection:
                amqp_channel = await connection.channel()
                exchange = await amqp_channel.get_exchange("fastapi_streaming")
                await exchange.publish(aio_pika.Message(payload), routing_key=channel)

        return publish
