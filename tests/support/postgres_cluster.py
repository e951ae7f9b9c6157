"""A private PostgreSQL cluster for tests that stop the server: ``initdb`` in a temporary folder.

The shared server on 5432 carries every other test, so the restart tests get a cluster of
their own on a spare port, created once per session. PostgreSQL refuses to run as root: when
the tests run as root, the cluster belongs to the ``postgres`` system user. ``POSTGRES_BIN``
names the folder of ``initdb`` and ``postgres`` when they are not in Debian's place.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi_streaming.testing.processes import PrivateBroker, free_port, run_as


def postgres_bindir() -> Path | None:
    """The folder of ``initdb``, ``postgres`` and ``pg_isready``, or None when not installed."""
    candidates = [os.environ.get("POSTGRES_BIN", "")]
    candidates += sorted(
        (str(p) for p in Path("/usr/lib/postgresql").glob("*/bin")),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(str(Path(initdb).parent))
    for candidate in filter(None, candidates):
        folder = Path(candidate)
        if all((folder / tool).is_file() for tool in ("initdb", "postgres", "pg_isready")):
            return folder
    return None


def missing_reason() -> str | None:
    """Why no private cluster can be made here, or None when one can."""
    if postgres_bindir() is None:
        return (
            "no PostgreSQL server binaries (initdb, postgres): apt-get install postgresql, "
            "or set POSTGRES_BIN to their folder"
        )
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, and there is no postgres user for the private cluster"
    return None


@contextmanager
def private_postgres() -> Iterator[PrivateBroker]:
    """A started cluster with database ``postgres``, trust authentication, on 127.0.0.1 only."""
    bindir = postgres_bindir()
    assert bindir is not None, missing_reason()
    user = "postgres" if os.geteuid() == 0 else None
    folder = Path(tempfile.mkdtemp(prefix="fastapi-streaming-pg-"))
    try:
        if user is not None:
            shutil.chown(folder, user, user)
        data = folder / "data"
        created = subprocess.run(
            [
                *(bindir / "initdb", "-D", data, "-U", "postgres", "--auth=trust"),
                *("-E", "UTF8", "--locale=C", "--no-sync"),
            ],
            check=False,
            capture_output=True,
            text=True,
            **run_as(user),  # type: ignore[call-overload]
        )
        if created.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{created.stdout}{created.stderr}")
        port = free_port()
        ready = [bindir / "pg_isready", "-q", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
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
            stop_signal=signal.SIGINT,  # "fast" shutdown, as pg_ctl stop: sessions are ended
            ready=lambda: subprocess.run(ready, check=False).returncode == 0,
        )
        cluster.start_now()
        try:
            yield cluster
        finally:
            cluster.stop_now()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
