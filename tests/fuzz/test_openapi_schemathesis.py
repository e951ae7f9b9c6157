"""Schemathesis over the example app's OpenAPI document, on a real server.

The publish routes are what this is about: once the document lists them (any operation under
``/streams/publish/``), only they are fuzzed. Until then every operation the document has is
(the example app's sign-up and login routes), so the harness runs and keeps running. The one
check is the one that matters here: no input makes the server answer 5xx.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from tests.support.server import ServerProcess

PUBLISH_ROUTES = r"^/streams/publish/"


@pytest.fixture(scope="module")
def example_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    database = Path(tmp_path_factory.mktemp("example")) / "users.db"
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{database}", "FEED_INTERVAL": "5"}
    with ServerProcess("example_app.main:app", env=env) as server:
        yield server


def operations(schema: Any) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


@pytest.fixture(scope="module")
def fuzzed_operations(example_server: ServerProcess) -> list[Any]:
    schema = schemathesis.openapi.from_url(example_server.url + "/openapi.json")
    publish = operations(schema.include(path_regex=PUBLISH_ROUTES))
    found = publish or operations(schema)
    assert found, "the example app's OpenAPI document lists no operation"
    return found


@settings(max_examples=30)  # signing up hashes a password: ~0.5 s per example
@given(data=st.data())
def test_no_input_to_the_example_apps_routes_gives_5xx(
    example_server: ServerProcess, fuzzed_operations: list[Any], data: st.DataObject
) -> None:
    operation = data.draw(st.sampled_from(fuzzed_operations), label="operation")
    case = data.draw(operation.as_strategy(), label="case")
    case.call_and_validate(base_url=example_server.url, checks=[not_a_server_error])
