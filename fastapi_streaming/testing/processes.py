"""Broker servers a test owns: started on a spare port, stopped cleanly or killed by their PID.

The conformance suite's restart test stops the broker under a connected backend. It must never
do that to a broker other tests (or other people) share, so a plugin's tests start a private
one with :class:`PrivateBroker` and hand it to the suite as its ``broker_control``::

    @pytest.fixture(scope="session")
    def private_mosquitto(tmp_path_factory):
        port = free_port()
        config = tmp_path_factory.mktemp("mosquitto") / "mosquitto.conf"
        config.write_text(f"listener {port} 127.0.0.1\\nallow_anonymous true\\n")
        broker = PrivateBroker(
            "mosquitto", ["mosquitto", "-c", str(config)], port=port, url=f"mqtt://127.0.0.1:{port}"
        )
        yield broker.start_now()
        broker.stop_now()

The broker runs in a session (process group) of its own, so killing it also kills the helper
processes it started, as a crash of its machine would; its output goes to a log file that an
error message quotes when the broker does not come up.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

#: How much of the broker's log an error message quotes.
LOG_TAIL_CHARS = 3000


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a TCP connection to ``host:port`` is accepted."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def run_as(user: str | None) -> dict[str, object]:
    """``subprocess`` arguments that run a command as ``user`` when this process is root.

    Some servers refuse to run as root (PostgreSQL) or must share a system user's files (the
    Erlang cookie of RabbitMQ); as any other user, the command runs as that user itself.
    """
    if user is None or os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


class PrivateBroker:
    """One broker process of the test's own; a conformance ``BrokerControl``.

    ``command`` starts the server in the foreground, listening on ``port``; its output goes to
    a log file in ``log_dir`` (the temporary folder by default), which the caller removes. The
    broker counts as started once ``port`` accepts connections and ``ready()`` (when given)
    returns true.
    ``stop()`` sends ``stop_signal`` (the server's clean shutdown) and waits for the process to
    end; ``kill()`` sends SIGKILL to its whole process group. ``start()`` runs ``command`` again
    with the same port, data and environment.
    """

    def __init__(
        self,
        name: str,
        command: Sequence[str | Path],
        *,
        port: int,
        url: str,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
        cwd: str | Path | None = None,
        log_dir: str | Path | None = None,
        stop_signal: int = signal.SIGTERM,
        ready: Callable[[], bool] | None = None,
        start_timeout: float = 30.0,
        stop_timeout: float = 30.0,
    ) -> None:
        self.name = name
        self.command = [str(part) for part in command]
        self.port = port
        self.url = url
        self.env = None if env is None else {**os.environ, **env}
        self.user = user
        self.cwd = cwd
        self.stop_signal = stop_signal
        self.ready = ready
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        handle, log = tempfile.mkstemp(prefix=f"{name}-", suffix=".log", dir=log_dir)
        os.close(handle)
        self.log_path = Path(log)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # The conformance suite's BrokerControl ------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(self.start_now)

    async def stop(self) -> None:
        await asyncio.to_thread(self.stop_now)

    async def kill(self) -> None:
        await asyncio.to_thread(self.stop_now, kill=True)

    # Blocking versions, for fixtures --------------------------------------------------------

    def start_now(self) -> PrivateBroker:
        """Start the broker and return once it accepts connections; raise if it does not."""
        if self.running:
            return self
        if port_accepts(self.port):
            raise RuntimeError(f"{self.name}: port {self.port} is taken by another process")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # type: ignore[call-overload]  # run_as kwargs
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                **run_as(self.user),
            )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode} while starting:\n"
                    f"{self.log_tail()}"
                )
            if port_accepts(self.port) and (self.ready is None or self.ready()):
                return self
            time.sleep(0.05)
        self.stop_now(kill=True)
        raise RuntimeError(
            f"{self.name} did not accept connections on 127.0.0.1:{self.port} within "
            f"{self.start_timeout} s:\n{self.log_tail()}"
        )

    def stop_now(self, *, kill: bool = False) -> None:
        """Stop the broker (SIGKILL to its process group when ``kill``); wait until it is gone."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            if kill:
                _signal_group(process.pid, signal.SIGKILL)
            else:
                process.send_signal(self.stop_signal)
            try:
                process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait(self.stop_timeout)
        # Helpers of the server (its worker processes) leave with it, cleanly or not.
        _signal_group(process.pid, signal.SIGKILL)
        deadline = time.monotonic() + self.stop_timeout
        while port_accepts(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


class BrokerAt:
    """A private broker reached through another backend URL: other options, another scheme."""

    def __init__(self, broker: PrivateBroker, url: str) -> None:
        self.broker = broker
        self.url = url

    async def start(self) -> None:
        await self.broker.start()

    async def stop(self) -> None:
        await self.broker.stop()

    async def kill(self) -> None:
        await self.broker.kill()
