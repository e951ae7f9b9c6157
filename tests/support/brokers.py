"""Broker processes a test owns: started on a spare port, stopped and restarted by PID."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Sequence

from tests.support.server import free_port


class RedisProcess:
    """A private redis-server that keeps nothing on disk."""

    def __init__(
        self,
        password: str | None = None,
        *,
        host: str = "127.0.0.1",
        launcher: Sequence[str] = (),
    ) -> None:
        """``launcher`` goes before the command, e.g. ``ip netns exec NAME`` for another host."""
        self.host = host
        self.launcher = list(launcher)
        self.port = free_port()
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        userinfo = f":{self.password}@" if self.password else ""
        return f"redis://{userinfo}{self.host}:{self.port}"

    def start(self) -> RedisProcess:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        self.process = subprocess.Popen(
            [
                *self.launcher,
                binary,
                "--bind",
                self.host,
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                *(["--requirepass", self.password] if self.password else []),
                # Reached from other (namespaced) hosts on a private test network only.
                "--protected-mode",
                "yes" if self.host == "127.0.0.1" else "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self, *, kill: bool = False) -> None:
        """Shut down cleanly (SIGTERM), or die of SIGKILL as in a crash when ``kill``."""
        if self.process is not None and self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            self.process.wait(10)
        self.process = None
