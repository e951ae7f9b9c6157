from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.cdc import capture_table

pytestmark = [pytest.mark.postgres, pytest.mark.cdc]


@pytest.fixture
def orders() -> Iterator[str]:
    with capture_table(
        "id serial PRIMARY KEY, customer_id int NOT NULL, item text NOT NULL, "
        "email text, amount numeric(10, 2), meta jsonb, at timestamptz DEFAULT now()",
        prefix="orders",
    ) as name:
        yield name
