"""``fastapi-streaming asyncapi MODULE:APP``, run as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from example_app.main import streaming as example_streaming
from fastapi_streaming.asyncapi import get_asyncapi

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fastapi_streaming", "asyncapi", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_writes_json_to_stdout() -> None:
    done = run("example_app.main:app")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == get_asyncapi(example_streaming)


def test_writes_yaml_of_another_version_to_a_file(tmp_path: Path) -> None:
    target = tmp_path / "asyncapi.yaml"
    done = run(
        "example_app.main:app",
        "--format",
        "yaml",
        "--asyncapi-version",
        "2.6.0",
        "--public-url",
        "https://api.example.com",
        "-o",
        str(target),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    document = yaml.safe_load(target.read_text())
    assert document == get_asyncapi(
        example_streaming, version="2.6.0", base_url="https://api.example.com"
    )


def test_accepts_the_streaming_api_itself() -> None:
    done = run("example_app.main:streaming", "--asyncapi-version", "3.1.0")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["asyncapi"] == "3.1.0"


def test_a_module_that_does_not_import() -> None:
    done = run("no_such_module.main:app")
    assert done.returncode == 2
    assert done.stderr == (
        "Error: Could not import module 'no_such_module.main': "
        "ModuleNotFoundError: No module named 'no_such_module'\n"
    )


def test_a_missing_attribute() -> None:
    done = run("example_app.main:nothing")
    assert done.returncode == 2
    assert "has no attribute 'nothing'" in done.stderr


def test_an_object_that_is_not_an_app() -> None:
    done = run("example_app.main:INDEX")
    assert done.returncode == 2
    assert "is a PosixPath, not a FastAPI app with a streaming API" in done.stderr


def test_a_reference_without_a_colon() -> None:
    done = run("example_app.main")
    assert done.returncode == 2
    assert "is not MODULE:APP" in done.stderr


def test_an_unknown_version_is_refused_by_the_parser() -> None:
    done = run("example_app.main:app", "--asyncapi-version", "1.0.0")
    assert done.returncode == 2
    assert "invalid choice" in done.stderr
