"""Real servers for end-to-end tests: a uvicorn process on a free port, stopped by its PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``fastapi_streaming.server.run(app)`` in a child process, with its output kept in a file."""

    def __init__(
        self,
        app: str,
        *,
        env: Mapping[str, str] | None = None,
        workers: int = 1,
        port: int | None = None,
        host: str = "127.0.0.1",
        launcher: Sequence[str] = (),
        options: Mapping[str, object] | None = None,
    ) -> None:
        """``launcher`` goes before the command, e.g. ``ip netns exec NAME`` for another host."""
        self.app = app
        self.host = host
        self.launcher = list(launcher)
        #: More keyword arguments of ``run()`` (``gc_freeze=False``...).
        self.options = dict(options or {})
        self.port = port or free_port()
        self.workers = workers
        self.env = {**os.environ, **(env or {})}
        handle, name = tempfile.mkstemp(prefix="server-", suffix=".log")
        os.close(handle)
        self.log_path = Path(name)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def start(self, timeout: float = 20) -> ServerProcess:
        code = (
            "from fastapi_streaming.server import run; "
            f"run({self.app!r}, host={self.host!r}, port={self.port}, workers={self.workers}, "
            "log_level='info'"
            + "".join(f", {name}={value!r}" for name, value in self.options.items())
            + ")"
        )
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*self.launcher, sys.executable, "-c", code],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.output()}")
            if self._ready():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not start in {timeout}s:\n{self.output()}")

    def _ready(self) -> bool:
        if "Application startup complete" not in self.output():
            return False
        if self.workers > 1 and self.output().count("Application startup complete") < self.workers:
            return False
        try:
            with socket.create_connection((self.host, self.port), timeout=0.2):
                return True
        except OSError:
            return False

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def rss(self) -> int:
        """Resident memory of the server (and its workers), in bytes."""
        parent = psutil.Process(self.pid)
        return sum(p.memory_info().rss for p in [parent, *parent.children(recursive=True)])

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15) -> int:
        """Stop the server by its PID (gracefully first) and return its exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.log_path.unlink(missing_ok=True)
