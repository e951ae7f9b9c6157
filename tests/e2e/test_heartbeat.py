"""Idle event streams carry heartbeat comments, so proxies keep them and clients see life."""

from __future__ import annotations

import time

import httpx

from tests.support.server import ServerProcess


def test_idle_sse_stream_gets_heartbeat_comments() -> None:
    env = {"BROKER_URL": "memory://", "HEARTBEAT": "0.2"}
    with (
        ServerProcess("tests.apps.core_app:app", env=env) as server,
        httpx.stream("GET", server.url + "/streams/sse/alerts", timeout=5) as response,
    ):
        started, lines = time.monotonic(), []
        for line in response.iter_lines():
            lines.append(line)
            if lines.count(": ping") == 2:
                break
        elapsed = time.monotonic() - started
    assert lines[0] == ": stream open"
    assert lines.count(": ping") == 2
    assert 0.2 <= elapsed < 2, "one heartbeat per interval or two while idle"
