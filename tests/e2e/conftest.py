"""Fixtures of the security tests: a server with fastapi-users, and tokens it issued."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.auth import Tokens
from tests.support.server import ServerProcess

#: Seconds the tokens of the app's ``/auth/short/login`` live.
SHORT_LIFETIME = 3


@pytest.fixture(scope="module")
def users_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("users") / "users.db"


@pytest.fixture(scope="module")
def secure_server(users_database: Path) -> Iterator[ServerProcess]:
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{users_database}",
        "SHORT_LIFETIME": str(SHORT_LIFETIME),
        "WEBSUB_DATABASE_URL": f"sqlite+aiosqlite:///{users_database.parent / 'hub.db'}",
    }
    with ServerProcess("tests.apps.secure_app:app", env=env) as server:
        yield server


@pytest.fixture(scope="module")
def tokens(secure_server: ServerProcess) -> Tokens:
    return Tokens.issue(secure_server.url)
