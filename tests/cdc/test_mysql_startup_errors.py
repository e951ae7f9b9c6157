"""A MariaDB source that is not set up for capture stops the app at startup, naming the fix.

Server settings are tried on private servers (the binlog off, as on a fresh install; the binlog
on, with settings changed for the test): the shared server on 3306 keeps its configuration.
Privileges are tried with users made for the test on the shared server and dropped afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from fastapi_streaming import StreamingAPI
from fastapi_streaming.cdc import CaptureConfigurationError, MySQLChanges
from fastapi_streaming.cdc.mysqlcheck import global_privileges
from fastapi_streaming.testing.private_brokers import private_mariadb, session_broker
from fastapi_streaming.testing.processes import PrivateBroker
from tests.support.mariadb import ORDERS, capture_database, row_binlog_or_skip, sql

pytestmark = [pytest.mark.mysql, pytest.mark.cdc]


async def start(source: MySQLChanges) -> None:
    streaming = StreamingAPI(broker="memory://")
    streaming.changes("/tables/t", source=source)(lambda change: change)
    async with streaming.running():
        pass


async def refusal(dsn: str, table: str, **options: bool) -> str:
    with pytest.raises(CaptureConfigurationError) as caught:
        await start(MySQLChanges(dsn, table=table, **options))
    return str(caught.value)


@pytest.fixture(scope="module")
def binlog_off() -> Iterator[PrivateBroker]:
    with session_broker(lambda: private_mariadb(binlog=False)) as server:
        yield server


@pytest.fixture(scope="module")
def binlog_on() -> Iterator[PrivateBroker]:
    with session_broker(private_mariadb) as server:
        yield server


@pytest.fixture
def shared() -> Iterator[str]:
    row_binlog_or_skip()
    with capture_database(ORDERS) as database:
        yield database


async def test_the_binlog_off_says_what_to_configure(binlog_off: PrivateBroker) -> None:
    with capture_database(ORDERS, port=binlog_off.port) as database:
        message = await refusal(f"{binlog_off.url}/{database}", "orders")
    assert "The binlog is off" in message
    for line in ("log_bin = mysql-bin", "binlog_format = ROW", "server_id = 1", "restart"):
        assert line in message


@pytest.mark.parametrize(
    ("setting", "value", "told"),
    [
        ("binlog_format", "STATEMENT", "binlog_format is STATEMENT"),
        ("binlog_format", "MIXED", "binlog_format is MIXED"),
        ("binlog_row_image", "MINIMAL", "binlog_row_image is MINIMAL"),
        ("binlog_row_image", "NOBLOB", "binlog_row_image is NOBLOB"),
    ],
)
async def test_a_binlog_without_full_row_events_names_the_setting(
    binlog_on: PrivateBroker, setting: str, value: str, told: str
) -> None:
    binlog_on.start_now()
    with capture_database(ORDERS, port=binlog_on.port) as database:
        ((was,),) = sql(f"SELECT @@GLOBAL.{setting}", port=binlog_on.port)
        sql(f"SET GLOBAL {setting} = %s", (value,), port=binlog_on.port)
        try:
            message = await refusal(f"{binlog_on.url}/{database}", "orders")
        finally:
            sql(f"SET GLOBAL {setting} = %s", (was,), port=binlog_on.port)
        await start(MySQLChanges(f"{binlog_on.url}/{database}", table="orders"))  # set: starts
    assert told in message
    assert f"SET GLOBAL {setting} = " in message and "[mysqld]" in message


@pytest.mark.parametrize(
    "grant",
    ["", "REPLICATION SLAVE ADMIN, BINLOG MONITOR", "REPLICATION CLIENT", "REPLICATION SLAVE"],
)
async def test_a_user_that_may_not_read_the_binlog_is_told_the_grant(
    shared: str, grant: str
) -> None:
    user = f"cdc_{uuid.uuid4().hex[:8]}"
    sql(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'")
    try:
        sql(f"GRANT ALL ON {shared}.* TO '{user}'@'%'")
        if grant:
            sql(f"GRANT {grant} ON *.* TO '{user}'@'%'")
        message = await refusal(f"mysql://{user}:pw@127.0.0.1:3306/{shared}", "orders")
        sql(f"GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '{user}'@'%'")
        await start(MySQLChanges(f"mysql://{user}:pw@127.0.0.1:3306/{shared}", table="orders"))
    finally:
        sql(f"DROP USER '{user}'@'%'")
    assert f"GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '{user}'@'%';" in message
    assert "pw" not in message.replace(f"'{user}'", "")


async def test_a_user_that_may_not_keep_the_position_is_told_the_grant(shared: str) -> None:
    user = f"cdc_{uuid.uuid4().hex[:8]}"
    sql(f"CREATE USER '{user}'@'%'")
    try:
        sql(f"GRANT SELECT ON {shared}.orders TO '{user}'@'%'")
        sql(f"GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '{user}'@'%'")
        message = await refusal(f"mysql://{user}@127.0.0.1:3306/{shared}", "orders")
    finally:
        sql(f"DROP USER '{user}'@'%'")
    assert "GRANT CREATE, SELECT, INSERT, UPDATE ON" in message
    assert f"{shared}.fastapi_streaming_cdc_positions" in message


async def test_a_table_without_primary_key_explains_snapshot_ids_and_before(shared: str) -> None:
    sql("CREATE TABLE notes (note VARCHAR(20))", database=shared)
    dsn = f"mysql://root@127.0.0.1:3306/{shared}"
    message = await refusal(dsn, "notes")
    assert "has no primary key" in message and "ADD COLUMN id BIGINT AUTO_INCREMENT" in message
    assert "snapshot=False" in message and "`before` still holds the whole old row" in message
    await start(MySQLChanges(dsn, table="notes", snapshot=False))  # streaming only: allowed


async def test_a_missing_table_is_named(shared: str) -> None:
    message = await refusal(f"mysql://root@127.0.0.1:3306/{shared}", "nosuch")
    assert f"{shared}.nosuch does not exist" in message and "table=" in message


async def test_a_wrong_dsn_says_to_check_the_url() -> None:
    unreachable = await refusal("mysql://app:secret@127.0.0.1:1/app", "orders")
    assert "Cannot connect" in unreachable and "mysql://user:password@host:3306/database" in (
        unreachable
    )
    assert "secret" not in unreachable
    with pytest.raises(CaptureConfigurationError, match="not a MySQL/MariaDB URL"):
        MySQLChanges("postgresql://postgres@127.0.0.1:5432/app", table="orders")


def test_privilege_names_are_compared_whole() -> None:
    grants = [
        "GRANT REPLICATION SLAVE ADMIN, BINLOG MONITOR ON *.* TO `u`@`%`",
        "GRANT ALL PRIVILEGES ON `app`.* TO `u`@`%`",
    ]
    assert global_privileges(grants) == {"REPLICATION SLAVE ADMIN", "BINLOG MONITOR"}
