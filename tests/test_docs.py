"""The user guide stays whole: its included examples exist, each example is shown, and no page
holds Python code that no test runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: ``--8<-- "docs_src/x.py"`` or, for the lines between section markers, ``"docs_src/x.py:name"``.
SNIPPET = re.compile(r'^--8<-- "([^":]+)(?::([\w-]+))?"$', re.MULTILINE)
PYTHON_BLOCK = re.compile(r"^```python[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
#: The README is shown on its own (no snippet includes there): each of its Python blocks follows
#: a comment naming the docs_src file it is a copy of.
README_BLOCK = re.compile(
    r"^<!-- (docs_src/[\w/]+\.py)[^>]*-->\n```python\n(.*?)^```", re.MULTILINE | re.DOTALL
)


def pages() -> list[Path]:
    return sorted((ROOT / "docs").rglob("*.md"))


def included_files() -> set[str]:
    return {path for page in pages() for path, _ in SNIPPET.findall(page.read_text())}


def test_every_included_example_exists() -> None:
    missing = sorted(path for path in included_files() if not (ROOT / path).is_file())
    assert not missing


def test_every_included_section_exists() -> None:
    for page in pages():
        for path, section in SNIPPET.findall(page.read_text()):
            if section:
                text = (ROOT / path).read_text()
                assert f"[start:{section}]" in text and f"[end:{section}]" in text, (path, section)


def test_snippet_markers_are_intact() -> None:
    """A formatter that rewrites ``--8<--`` silently drops the example from the page."""
    for page in pages():
        for number, line in enumerate(page.read_text().splitlines(), 1):
            if "--8" in line and not line.startswith("    "):
                assert SNIPPET.fullmatch(line), f"{page.relative_to(ROOT)}:{number}: {line}"


def test_every_docs_example_is_shown_in_the_docs() -> None:
    examples = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "docs_src").rglob("*.py")
        if path.name != "__init__.py"
    }
    shown = included_files() | {path for path, _ in README_BLOCK.findall(readme())}
    assert examples <= shown, sorted(examples - shown)


def test_no_page_holds_inline_python() -> None:
    """Python shown in the docs lives in docs_src/, where tests import or run it."""
    inline = [
        f"{page.relative_to(ROOT)}:{page.read_text()[: block.start()].count(chr(10)) + 1}"
        for page in pages()
        for block in PYTHON_BLOCK.finditer(page.read_text())
        if not SNIPPET.fullmatch(block.group(1).strip())
    ]
    assert not inline, f"move these blocks to docs_src/ and include them: {inline}"


def readme() -> str:
    return (ROOT / "README.md").read_text()


def test_the_readme_python_is_a_tested_file() -> None:
    blocks = PYTHON_BLOCK.findall(readme())
    copies = README_BLOCK.findall(readme())
    assert len(copies) == len(blocks), "name the docs_src file each README block is a copy of"
    for path, body in copies:
        assert body == (ROOT / path).read_text(), f"the README's copy of {path} differs"
