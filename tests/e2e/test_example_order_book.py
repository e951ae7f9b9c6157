"""On PostgreSQL, the example page shows the order book table as a change stream: the rows
already there (a snapshot), then every insert, update and delete, whoever makes it; in a real
browser (headless Chromium) against a real server and database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from example_app.orderbook import slot_name
from tests.e2e.test_example_chart import page  # noqa: F401 - the browser fixture
from tests.support.cdc import drop_capture, execute, logical_wal_or_skip
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.cdc]

ROWS = "#order-table tr"


@pytest.fixture
def database() -> Iterator[str]:
    """A database of its own (the app creates its tables in it); dropped with the slot."""
    logical_wal_or_skip()
    name = f"example_{uuid.uuid4().hex[:10]}"
    execute(f"CREATE DATABASE {name}")
    dsn = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        yield name
    finally:
        slot = slot_name(dsn)
        drop_capture(slot, dsn=dsn)
        execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def row_text(browser_page: Any, key: str) -> str:
    return str(browser_page.inner_text(f'#order-table tr[data-id="{key}"]'))


def test_the_page_shows_the_order_book_table_live_on_postgresql(
    database: str,
    page: Any,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    dsn = f"postgresql://postgres@127.0.0.1:5432/{database}"
    env = {
        "FEED_INTERVAL": "0.2",
        "DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}",
        "WEBSUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/websub.db",
    }
    with ServerProcess("example_app.main:app", env=env) as server:
        # Another program wrote a row before the page opened: it comes in the snapshot.
        execute(
            "INSERT INTO order_book VALUES ('from-psql', 'MSFT', 'sell', 5, 410.5, 'accepted', "
            "now(), 'desk@example.com')",
            dsn=dsn,
        )
        page.goto(server.url + "/")
        page.fill("input[name=username]", f"{uuid.uuid4().hex[:8]}@example.com")
        page.fill("input[name=password]", "secret-password")
        page.click("#login-form button")
        page.wait_for_selector('#order-table tr[data-id="from-psql"]', timeout=20_000)
        assert "snapshot" in row_text(page, "from-psql")

        # An order placed on the page is written to the table; its insert comes back.
        page.fill("#order-form input[name=symbol]", "NVDA")
        page.fill("#order-form input[name=quantity]", "7")
        page.click("#order-form button")
        page.wait_for_function(
            "[...document.querySelectorAll('#order-table tr')]"
            ".some((row) => row.innerText.includes('NVDA') && row.innerText.includes('insert'))",
            timeout=20_000,
        )

        # Changes made outside the app: an update, then a delete.
        execute("UPDATE order_book SET status = 'filled' WHERE id = 'from-psql'", dsn=dsn)
        page.wait_for_function(
            "document.querySelector('#order-table tr[data-id=\"from-psql\"]')"
            ".innerText.includes('filled')",
            timeout=20_000,
        )
        assert "update" in row_text(page, "from-psql")
        execute("DELETE FROM order_book WHERE id = 'from-psql'", dsn=dsn)
        page.wait_for_selector('#order-table tr[data-id="from-psql"]', state="detached")
        assert page.locator(ROWS).count() == 1
