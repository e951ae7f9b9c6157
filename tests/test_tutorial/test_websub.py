"""The examples of docs/websub.md and docs/testing-websub.md work as the pages say."""

from __future__ import annotations

import asyncio
import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from docs_src.websub.test_webhooks import (
    hub,
    receiver,
    test_failed_deliveries_are_retried,
    test_quotes_arrive_signed,
)
from tests.support.websub import running_app

# Collected here: the docs' example tests, with their fixtures.
__all__ = ["hub", "receiver", "test_failed_deliveries_are_retried", "test_quotes_arrive_signed"]

NEEDS_CURL = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


async def curl(*args: str) -> str:
    """Run curl as the tutorial does (in a thread: the servers run in this event loop)."""
    result = await asyncio.to_thread(
        subprocess.run, ["curl", "-sS", *args], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@NEEDS_CURL
async def test_the_tutorial_subscribes_with_curl_and_the_receiver_gets_signed_quotes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # the tutorial's SQLite file lands here
    app_module = importlib.reload(importlib.import_module("docs_src.websub.app"))
    receiver_module = importlib.import_module("docs_src.websub.receiver")
    async with running_app(app_module.app) as hub, running_app(receiver_module.app) as receiver:
        discovery = await curl("-i", f"{hub}/streams/websub/stocks/AAPL")
        assert f'<{hub}/streams/websub/hub>; rel="hub"' in discovery
        answer = await curl(
            "-i",
            f"{hub}/streams/websub/hub",
            "--data-urlencode",
            "hub.mode=subscribe",
            "--data-urlencode",
            f"hub.topic={hub}/streams/websub/stocks/AAPL",
            "--data-urlencode",
            f"hub.callback={receiver}/webhook",
            "--data-urlencode",
            "hub.secret=change-me",
            "--data-urlencode",
            "hub.lease_seconds=3600",
        )
        assert answer.startswith("HTTP/1.1 202")
        await wait_for_output(capsys, "subscribe")
        published = await curl(
            f"{hub}/streams/publish/stocks/AAPL",
            "-H",
            "content-type: application/json",
            "-d",
            '{"symbol": "AAPL", "price": 187.5}',
        )
        event_id = httpx.Response(200, content=published).json()["id"]
        printed = await wait_for_output(capsys, event_id)
    assert f'{event_id} {{"symbol":"AAPL","price":187.5}}' in printed


async def wait_for_output(capsys: pytest.CaptureFixture[str], text: str) -> str:
    seen = ""
    for _ in range(200):
        seen += capsys.readouterr().out
        if text in seen:
            return seen
        await asyncio.sleep(0.05)
    raise AssertionError(f"{text!r} was never printed; printed: {seen!r}")


def test_the_testing_page_module_runs_when_copied_into_another_project(tmp_path: Path) -> None:
    """Copied alone into a project with pytest-asyncio's default (strict) mode, it passes."""
    source = Path(__file__).resolve().parents[2] / "docs_src" / "websub" / "test_webhooks.py"
    shutil.copy(source, tmp_path / "test_webhooks.py")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # none of this repository's settings
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_webhooks.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout
