"""Schemathesis over the example app's OpenAPI document, on a real server.

The publish routes are what this is about: when the document lists them (any operation under
``/streams/publish/``), only they are fuzzed, half the time with a token that has every scope;
a document without them has its other operations fuzzed instead (the example app's sign-up
and login routes). The one check is the one that matters here: no input makes the server
answer 5xx.
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

from tests.support.auth import Account
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


@pytest.fixture(scope="module")
def token(example_server: ServerProcess) -> str:
    """A token with every scope of the example, so publishes get past authentication."""
    return Account(example_server.url).login()


@settings(max_examples=40)  # signing up (if fuzzed) hashes a password: ~0.5 s per example
@given(data=st.data())
def test_no_input_to_the_example_apps_routes_gives_5xx(
    example_server: ServerProcess, fuzzed_operations: list[Any], token: str, data: st.DataObject
) -> None:
    operation = data.draw(st.sampled_from(fuzzed_operations), label="operation")
    case = data.draw(operation.as_strategy(), label="case")
    signed_in = data.draw(st.booleans(), label="signed in")
    headers = {"Authorization": f"Bearer {token}"} if signed_in else {}
    case.call_and_validate(
        base_url=example_server.url, headers=headers, checks=[not_a_server_error]
    )
