"""The ``/asyncapi`` page renders in a real browser, offline, from the app's own bundle.

Debian's Chromium (``apt-get install chromium``) driven by Playwright; it may resolve nothing
but the local server, so a page that reached for a CDN would stay blank.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fastapi_streaming.asyncapi import get_asyncapi
from tests.apps import asyncapi_app
from tests.support.browser import chromium_page
from tests.support.server import ROOT, ServerProcess

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess("tests.apps.asyncapi_app:app") as running:
        yield running


@pytest.fixture
def page() -> Iterator[Any]:
    with chromium_page(1400, 1000) as opened:
        yield opened


def test_the_docs_page_shows_every_topic_and_message(server: ServerProcess, page: Any) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{server.url}/asyncapi", wait_until="networkidle")
    page.wait_for_function(
        "document.body.innerText.includes('Every feature')"
        " && document.body.innerText.includes('/stocks/{symbol}')",
        timeout=30_000,
    )
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "asyncapi-docs.png"), full_page=True)
    text = page.inner_text("body")

    document = get_asyncapi(asyncapi_app.streaming)
    addresses = {channel["address"] for channel in document["channels"].values()}
    messages = {
        message["name"]
        for channel in document["channels"].values()
        for message in channel["messages"].values()
    }
    assert len(addresses) == 7 and len(messages) >= 7
    assert [address for address in addresses if address not in text] == []
    assert [name for name in messages if name not in text] == []
    scopes = {"stocks:read", "stocks:write", "chat:read", "chat:write"}
    assert [scope for scope in scopes if f"`{scope}`" not in text and scope not in text] == []
    assert all(url.startswith(server.url) for url in requested), requested
    assert f"{server.url}/asyncapi/static/asyncapi-react.js" in requested


def test_each_operation_shows_its_own_description_once(tmp_path: Path, page: Any) -> None:
    """The example's /orders has both modes: the subscribe operation must not show the publish
    handler's docstring, no description shows twice, and a summary shows no backticks."""
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/users.db",
        "WEBSUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/websub.db",
    }
    with ServerProcess("example_app.main:app", env=env) as example:
        page.goto(f"{example.url}/asyncapi", wait_until="networkidle")
        page.wait_for_function(
            "document.body.innerText.includes('Every accepted order')", timeout=30_000
        )
        text = page.inner_text("body")
    place = "Place an order; the server gives it an id, records who placed it, and accepts it."
    assert text.count(place) == 1
    assert text.count("Every accepted order, for the back office.") == 1
    assert text.count("Live quotes for one symbol.") == 1
    lines = [line for line in text.splitlines() if "`" in line]
    assert lines == [], lines
