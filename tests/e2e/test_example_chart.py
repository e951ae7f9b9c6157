"""The example page draws live one-minute candles, in a real browser (headless Chromium)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import chromium_page
from tests.support.server import ServerProcess

pytestmark = pytest.mark.browser

#: How many pixels of the chart are painted (its alpha channel), read in the page.
PAINTED = """() => {
  const canvas = document.getElementById("chart");
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i]) painted++;
  return painted;
}"""


@pytest.fixture
def page() -> Iterator[Any]:
    with chromium_page(1200, 1000) as opened:
        yield opened


def test_the_page_draws_candles_of_the_chosen_symbol(tmp_path: Path, page: Any) -> None:
    env = {
        "FEED_INTERVAL": "0.05",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/users.db",
        "WEBSUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/websub.db",
    }
    with ServerProcess("example_app.main:app", env=env) as server:
        page.goto(server.url + "/")
        assert page.evaluate(PAINTED) == 0  # nothing before logging in
        page.fill("input[name=username]", f"{uuid.uuid4().hex[:8]}@example.com")
        page.fill("input[name=password]", "secret-password")
        page.click("#login-form button")
        page.wait_for_function(f"({PAINTED})() > 100", timeout=15_000)
        page.select_option("#chart-symbol", "MSFT")
        page.wait_for_function(f"({PAINTED})() > 100", timeout=15_000)
        assert page.evaluate("candles.MSFT.size") >= 1
