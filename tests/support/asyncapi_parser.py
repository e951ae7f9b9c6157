"""Run the official AsyncAPI parser (``@asyncapi/parser`` from npm) on documents.

The parser is pinned in ``tests/tooling/package.json``; ``npm ci --prefix tests/tooling``
installs it (``.ci/run`` does).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

TOOLING = Path(__file__).resolve().parents[1] / "tooling"
NODE_MODULES = TOOLING / "node_modules"


def require_tooling() -> str:
    """The path of ``node``; fail (not skip) when the pinned tools are not installed."""
    node = shutil.which("node")
    if node is None or not (NODE_MODULES / "@asyncapi" / "parser").is_dir():
        pytest.fail(
            "The AsyncAPI parser is not installed: run `npm ci --prefix tests/tooling` "
            "(needs Node.js 18 or newer)."
        )
    return node


def parse_documents(documents: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Parse each document; return the parser's errors and warnings by document name."""
    node = require_tooling()
    with tempfile.TemporaryDirectory() as folder:
        paths = {}
        for name, document in documents.items():
            path = Path(folder) / f"{name}.json"
            path.write_text(json.dumps(document))
            paths[str(path)] = name
        done = subprocess.run(
            [node, str(TOOLING / "validate.mjs"), *paths],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=TOOLING,
        )
    results = {}
    for line in done.stdout.splitlines():
        found = json.loads(line)
        results[paths[found["file"]]] = found
    assert set(results) == set(documents), done.stderr
    return results
