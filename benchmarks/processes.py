"""Child processes of a run: the server under test, load clients, the publisher.

Every child is started with an explicit command, watched through psutil (RSS, CPU seconds) and
stopped by its own PID, never by name: other people run servers on this machine too.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import psutil  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[1]

#: What every server gets, however it is started (``fastapi-streaming run`` takes these, and
#: picks uvloop, httptools and websockets itself when they are installed, as here).
RUN_OPTIONS = [
    "--no-access-log",
    "--log-level", "warning",
    "--backlog", "8192",
    "--timeout-graceful-shutdown", "1",
]  # fmt: skip
#: The same uvicorn settings for every server: what a production deployment would pick.
UVICORN_OPTIONS = [
    "--loop", "uvloop",
    "--http", "httptools",
    "--ws", "auto",  # websockets-sansio, what users get by default
    *RUN_OPTIONS,
]  # fmt: skip


def raise_open_files_limit() -> None:
    """Thousands of sockets per process need more than the usual soft limit of 1024 fds."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_server_pid(port: int = 6379) -> int | None:
    """The local Redis server's process, to count its CPU in runs that go through it."""
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if process.info["name"] == "redis-server" and f":{port}" in cmdline:
            return int(process.pid)
    return None


def stop(process: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


class CPUClock:
    """CPU seconds (user + system) that a set of processes spent between two readings."""

    def __init__(self, pids: Sequence[int]) -> None:
        self.processes = [psutil.Process(pid) for pid in pids]
        self.start = self._read()
        self.started_at = time.monotonic()

    def _read(self) -> float:
        total = 0.0
        for process in self.processes:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def seconds(self) -> float:
        return self._read() - self.start

    def share(self) -> float:
        """CPU seconds per wall-clock second: 1.0 is one core fully busy."""
        wall = time.monotonic() - self.started_at
        return self.seconds() / wall if wall > 0 else 0.0


class ServerProcess:
    """``python -m uvicorn <app>`` (or ``fastapi-streaming run <app>``) on a free 127.0.0.1
    port."""

    def __init__(
        self,
        app: str,
        *,
        python: str,
        env: Mapping[str, str] | None = None,
        workers: int = 1,
        launcher: str = "uvicorn",
    ) -> None:
        self.app = app
        self.launcher = launcher
        self.python = python
        self.workers = workers
        self.port = free_port()
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self.log = tempfile.NamedTemporaryFile(prefix="bench-server-", suffix=".log", delete=False)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 30.0) -> ServerProcess:
        if self.launcher == "fastapi-streaming":
            command = [self.python, "-m", "fastapi_streaming", "run", self.app]
            command += ["--host", "127.0.0.1", "--port", str(self.port), *RUN_OPTIONS]
        else:
            command = [self.python, "-m", "uvicorn", self.app, "--host", "127.0.0.1"]
            command += ["--port", str(self.port), *UVICORN_OPTIONS]
        if self.workers > 1:
            command += ["--workers", str(self.workers)]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.app} exited at startup: {self.output()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.app} did not listen within {timeout}s: {self.output()[-2000:]}")

    @property
    def worker_pids(self) -> list[int]:
        """The processes that serve requests: the server itself, or its worker processes."""
        if self.workers == 1:
            return [self.pid]
        deadline = time.monotonic() + 30
        while True:
            children = [
                child
                for child in psutil.Process(self.pid).children()
                # multiprocessing's resource tracker is a child too, but serves nothing.
                if "resource_tracker" not in " ".join(child.cmdline())
            ]
            if len(children) >= self.workers or time.monotonic() > deadline:
                return [child.pid for child in children]
            time.sleep(0.1)

    def rss(self) -> int:
        """Resident memory of the server and its workers together."""
        pids = {self.pid, *self.worker_pids}
        return sum(int(psutil.Process(pid).memory_info().rss) for pid in pids)

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


class LineProcess:
    """A helper process of a run (load client, WebSub receiver), driven line by line: each
    command on its stdin is answered with one JSON line on its stdout."""

    def __init__(self, module: str, *args: str) -> None:
        self.module = module
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def read(self) -> dict[str, Any]:
        stdout: IO[str] | None = self.process.stdout
        assert stdout is not None
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"{self.module} ({self.pid}) exited with {self.process.wait(5)}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def ask(self, command: str) -> dict[str, Any]:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(command + "\n")
        stdin.flush()
        return self.read()

    def stop(self) -> None:
        stdin = self.process.stdin
        if stdin is not None and self.process.poll() is None:
            try:
                stdin.write("exit\n")
                stdin.close()
            except OSError:
                pass
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            stop(self.process)


class ClientProcess(LineProcess):
    """One ``benchmarks.loadclient`` process."""

    def __init__(self, *, port: int, path: str, kind: str, connections: int) -> None:
        super().__init__(
            "benchmarks.loadclient",
            *("--port", str(port), "--path", path, "--kind", kind),
            *("--connections", str(connections)),
        )


def run_publisher(
    *, port: int, path: str, rate: float, duration: float, connections: int = 4
) -> tuple[dict[str, Any], float]:
    """Run ``benchmarks.publisher`` to the end; its report and its CPU seconds per second."""
    command = [sys.executable, "-m", "benchmarks.publisher", "--port", str(port)]
    command += ["--path", path, "--rate", str(rate), "--duration", str(duration)]
    command += ["--connections", str(connections)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        out, _ = process.communicate(timeout=duration + 60)
    finally:
        stop(process)
    wall = time.monotonic() - started
    # The publisher is the only child reaped meanwhile, so the children's usage grew by its own.
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if process.returncode != 0:
        raise RuntimeError(f"publisher failed with exit code {process.returncode}")
    report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return report, cpu / wall
