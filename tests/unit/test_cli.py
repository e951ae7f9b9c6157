"""The ``fastapi-streaming`` command as a newcomer uses it, outside this repository."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from fastapi_streaming.cli import main
from tests.support.server import ROOT, free_port

APP = """
from fastapi import FastAPI
from fastapi_streaming import StreamingAPI

streaming = StreamingAPI()


@streaming.subscribe("/ticks")
async def ticks(event: int) -> int:
    return event


app = FastAPI()
streaming.init_app(app)
"""
COMMAND = Path(sys.executable).with_name("fastapi-streaming")


def test_run_imports_the_app_from_the_current_directory(tmp_path: Path) -> None:
    (tmp_path / "myservice.py").write_text(APP)
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(COMMAND), "run", "myservice:app", "--port", str(port), "--log-level", "warning"],
            cwd=tmp_path,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and process.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/streams/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail(f"the server did not start: {log.read_text()}")
        assert health.status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_run_offers_the_uvicorn_options_the_docs_promise(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    shown = set(re.findall(r"--[a-z-]+", capsys.readouterr().out))
    promised = set()
    for page in (ROOT / "docs").rglob("*.md"):
        for line in page.read_text().splitlines():
            if "fastapi-streaming run" in line or "uvicorn's options" in line:
                promised |= set(re.findall(r"`(--[a-z-]+)", line))
    promised |= {"--host", "--port", "--workers", "--reload", "--app-dir", "--root-path"}
    promised |= {"--timeout-graceful-shutdown", "--proxy-headers", "--forwarded-allow-ips"}
    assert promised <= shown, promised - shown


def test_backends_says_when_a_driver_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "aiokafka", None)  # as if it were not installed
    assert main(["backends"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert 'driver not installed: pip install "fastapi-streaming[kafka]"' in rows["kafka"]
    assert "not installed" not in rows["redis"] and "not installed" not in rows["memory"]
