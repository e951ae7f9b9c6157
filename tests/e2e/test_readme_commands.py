"""Every command of the README works as written against the example app (`make run`), and the
example app offers WebSub, with loopback callbacks only when `WEBSUB_ALLOW_LOOPBACK=1`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.auth import Account
from tests.support.server import ROOT, ServerProcess
from tests.support.websub import Subscriber

NEEDS_CURL = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
#: Stands in for curl in the README's commands: fails on an HTTP error, and lets a stream
#: (`curl -N`, which a reader stops with Ctrl+C) run for two seconds.
CURL = """
curl() {
  if [[ " $* " == *" -N "* ]]; then
    local status=0
    command curl -sS --max-time 2 "$@" || status=$?
    [[ $status == 28 ]] && return 0 || return $status
  fi
  command curl -sS --fail-with-body "$@"
}
set -euo pipefail
"""


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```console\n(.*?)```", text, re.DOTALL)
    return [line[2:] for block in blocks for line in block.splitlines() if line.startswith("$ ")]


def example_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "FEED_INTERVAL": "0.05",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/users.db",
        "WEBSUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/websub.db",
        **extra,
    }


@NEEDS_CURL
def test_every_readme_command_works_on_the_example_app(tmp_path: Path) -> None:
    commands = readme_commands()
    assert any("/streams/publish/" in command for command in commands)
    with ServerProcess("example_app.main:app", env=example_env(tmp_path)) as server:
        outputs = []
        script = CURL
        for number, command in enumerate(commands):
            command = command.replace("http://127.0.0.1:8000", server.url)
            script += f"echo '<<{number}>>'\n{command}\necho\n"
        done = subprocess.run(
            ["bash", "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path
        )
        assert done.returncode == 0, done.stdout + done.stderr
        outputs = re.split(r"<<\d+>>\n", done.stdout)[1:]
    assert len(outputs) == len(commands)
    for command, output in zip(commands, outputs, strict=True):
        if "/streams/sse/stocks/" in command:
            assert "data: {" in output and '"price"' in output, output
        if "/streams/publish/orders" in command:
            assert json.loads(output)["published"] is True
        if "/streams/websub/" in command:
            assert 'rel="hub"' in output, output


async def test_the_example_app_calls_back_loopback_subscribers_when_allowed(
    tmp_path: Path,
) -> None:
    env = example_env(tmp_path, WEBSUB_ALLOW_LOOPBACK="1")
    with ServerProcess("example_app.main:app", env=env) as server:
        token = Account(server.url).login()
        async with Subscriber() as subscriber:
            callback = subscriber.behave("/quotes")
            answer = await hub_subscribe(server.url, token, callback)
            assert answer.status_code == 202, answer.text
            await subscriber.wait_until(lambda: len(subscriber.deliveries("/quotes")) >= 1)
    quote = json.loads(subscriber.deliveries("/quotes")[0].body)
    assert quote["symbol"] == "AAPL" and quote["price"] > 0


async def test_the_example_app_refuses_loopback_callbacks_by_default(tmp_path: Path) -> None:
    with ServerProcess("example_app.main:app", env=example_env(tmp_path)) as server:
        token = Account(server.url).login()
        async with Subscriber() as subscriber:
            answer = await hub_subscribe(server.url, token, subscriber.behave("/quotes"))
    assert answer.status_code == 400 and "loopback" in answer.text
    assert subscriber.verifications() == []


async def hub_subscribe(base: str, token: str, callback: str) -> httpx.Response:
    form = {
        "hub.mode": "subscribe",
        "hub.topic": f"{base}/streams/websub/stocks/AAPL",
        "hub.callback": callback,
    }
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        return await http.post(
            "/streams/websub/hub", data=form, headers={"Authorization": f"Bearer {token}"}
        )
