"""The flame graph drawn from py-spy's collapsed stacks: boxes as wide as their samples."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from benchmarks.flamegraph import main, read_stacks, render

SVG = "{http://www.w3.org/2000/svg}"
RUN = "run (asyncio/runners.py:44)"
SEND = "send (site-packages/uvicorn/protocols/http/httptools_impl.py:501)"
FANOUT = "_run (/src/fastapi_streaming/fanout.py:210)"
PUT_MANY = "put_many (/src/fastapi_streaming/fanout.py:90)"
STACKS = f"""\
{RUN};{SEND} 60
{RUN};{FANOUT} 30
{RUN};{FANOUT};{PUT_MANY} 10
not a stack line
"""


def boxes(svg: str) -> dict[str, tuple[float, float, str]]:
    """Each box's tooltip mapped to its x, width and fill."""
    found = {}
    for group in ET.fromstring(svg).iter(f"{SVG}g"):
        rect = group.find(f"{SVG}rect")
        title = group.find(f"{SVG}title")
        assert rect is not None and title is not None and title.text
        found[title.text] = (
            float(rect.get("x", 0)),
            float(rect.get("width", 0)),
            rect.get("fill", ""),
        )
    return found


def test_the_call_tree_sums_samples_along_each_stack() -> None:
    root = read_stacks(STACKS)
    assert root.samples == 100
    run = root.children["asyncio/runners.py:run"]
    assert run.samples == 100
    fanout = run.children["fastapi_streaming/fanout.py:_run"]
    assert fanout.samples == 40
    assert fanout.children["fastapi_streaming/fanout.py:put_many"].samples == 10
    assert root.depth() == 4


def test_boxes_are_as_wide_as_their_share_and_nested_under_their_caller() -> None:
    drawn = boxes(render(read_stacks(STACKS), "SSE 1,000 x 1,000/s"))
    all_x, all_width, _ = drawn["all (100 samples, 100.0%)"]
    send = drawn["uvicorn/protocols/http/httptools_impl.py:send (60 samples, 60.0%)"]
    fanout = drawn["fastapi_streaming/fanout.py:_run (40 samples, 40.0%)"]
    put_many = drawn["fastapi_streaming/fanout.py:put_many (10 samples, 10.0%)"]
    assert send[1] == pytest.approx(all_width * 0.6, abs=0.01)
    assert fanout[1] == pytest.approx(all_width * 0.4, abs=0.01)
    # Siblings side by side, in name order; a callee starts where its caller starts.
    assert fanout[0] == pytest.approx(all_x, abs=0.01)
    assert send[0] == pytest.approx(all_x + fanout[1], abs=0.01)
    assert put_many[0] == pytest.approx(fanout[0], abs=0.01)
    # The package's own frames in blue, the rest warm.
    assert fanout[2].endswith(",210)") and not send[2].endswith(",210)")


def test_an_empty_profile_is_refused_and_the_command_writes_beside_its_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValueError, match="no samples"):
        render(read_stacks("nothing here\n"), "empty")
    stacks = tmp_path / "fs-redis-sse.txt"
    stacks.write_text(STACKS)
    main([str(stacks)])
    svg = (tmp_path / "fs-redis-sse.svg").read_text()
    assert "fs-redis-sse (100 samples)" in svg
    assert "100 samples, 3 frames deep" in capsys.readouterr().out
