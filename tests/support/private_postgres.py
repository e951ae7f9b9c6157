"""A private PostgreSQL server on a free port, for tests that need settings the shared one must
keep (such as ``wal_level = replica``). Started with ``initdb``/``postgres`` as the ``postgres``
user and stopped by its PID."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg2
import pytest

from tests.support.server import free_port

BIN = Path("/usr/lib/postgresql/15/bin")


class PrivatePostgres:
    def __init__(self, **settings: str) -> None:
        self.settings = settings
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="pg-private-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self) -> dict[str, object]:
        if os.geteuid() != 0:
            return {}
        import pwd

        user = pwd.getpwnam("postgres")
        return {"user": user.pw_uid, "group": user.pw_gid}

    def start(self, timeout: float = 30) -> PrivatePostgres:
        if not (BIN / "initdb").exists():
            pytest.skip("PostgreSQL 15 server binaries are not installed")
        as_postgres = self._as_postgres()
        if as_postgres:
            shutil.chown(self.directory, "postgres", "postgres")
        self.data = self.directory / "data"
        subprocess.run(
            [str(BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust"],
            check=True,
            capture_output=True,
            **as_postgres,  # type: ignore[call-overload]
        )
        self._run(timeout)
        return self

    def _run(self, timeout: float) -> None:
        """Start the server on the existing data directory and wait until it answers."""
        options = [f"-c{key}={value}" for key, value in self.settings.items()]
        command = [str(BIN / "postgres"), "-D", str(self.data), "-p", str(self.port)]
        command += ["-clisten_addresses=127.0.0.1", f"-cunix_socket_directories={self.directory}"]
        self.process = subprocess.Popen(
            [*command, *options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **self._as_postgres(),  # type: ignore[call-overload]
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                psycopg2.connect(self.dsn, connect_timeout=1).close()
                return
            except psycopg2.OperationalError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the private PostgreSQL server did not start")

    def restart(self, timeout: float = 30) -> None:
        """Stop the server (fast shutdown: connections end) and start it again."""
        self._halt()
        self._run(timeout)

    def _halt(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def stop(self) -> None:
        self._halt()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> PrivatePostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
