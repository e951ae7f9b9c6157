"""The user guide stays whole: its included examples exist, and each example is shown."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNIPPET = re.compile(r'^--8<-- "([^"]+)"$', re.MULTILINE)


def included_files() -> set[str]:
    return {
        match
        for page in (ROOT / "docs").rglob("*.md")
        for match in SNIPPET.findall(page.read_text())
    }


def test_every_included_example_exists() -> None:
    missing = sorted(path for path in included_files() if not (ROOT / path).is_file())
    assert not missing


def test_snippet_markers_are_intact() -> None:
    """A formatter that rewrites ``--8<--`` silently drops the example from the page."""
    for page in (ROOT / "docs").rglob("*.md"):
        for number, line in enumerate(page.read_text().splitlines(), 1):
            if "--8" in line and not line.startswith("    "):
                assert SNIPPET.fullmatch(line), f"{page.relative_to(ROOT)}:{number}: {line}"


def test_every_docs_example_is_shown_in_the_docs() -> None:
    examples = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "docs_src").rglob("*.py")
        if path.name != "__init__.py"
    }
    assert examples <= included_files(), sorted(examples - included_files())
