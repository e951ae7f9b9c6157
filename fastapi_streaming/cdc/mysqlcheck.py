"""Startup checks of a MySQL/MariaDB source, reflection of its table, and value conversion.

The binlog must be on, row-based and with full row images; each missing setting is reported
with the configuration lines that fix it.
"""

from __future__ import annotations

import datetime
import decimal
import logging
from typing import Any
from urllib.parse import unquote, urlsplit

from .errors import CaptureConfigurationError
from .table import ColumnInfo, TableInfo

logger = logging.getLogger("fastapi_streaming.cdc")

POSITIONS = "fastapi_streaming_cdc_positions"
NO_SUCH_TABLE = 1146  # ER_NO_SUCH_TABLE

_INTEGERS = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year"}
_FLOATS = {"float", "double", "real"}
_TEXT = {
    "char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set", "decimal",
    "date", "datetime", "timestamp", "time", "binary", "varbinary", "blob", "tinyblob",
    "mediumblob", "longblob", "bit", "uuid", "inet4", "inet6",
}  # fmt: skip


def settings(dsn: str) -> dict[str, Any]:
    """pymysql connection arguments from ``mysql://user:password@host:port/database``."""
    parts = urlsplit(dsn)
    if parts.scheme not in ("mysql", "mariadb") or not parts.path.strip("/"):
        raise CaptureConfigurationError(
            f"{dsn!r} is not a MySQL/MariaDB URL: write mysql://user:password@host:3306/database."
        )
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
        "database": parts.path.strip("/"),
    }


def connect(options: dict[str, Any]) -> Any:
    import pymysql

    try:
        return pymysql.connect(**options, autocommit=True, connect_timeout=10)
    except pymysql.MySQLError as exc:
        where = f"{options['user']}@{options['host']}:{options['port']}/{options['database']}"
        raise CaptureConfigurationError(
            f"Cannot connect to the MySQL/MariaDB source {where}: {exc}. Check the URL "
            "(mysql://user:password@host:3306/database) and that the server accepts this user."
        ) from None


def check_server(cursor: Any) -> None:
    cursor.execute("SELECT @@log_bin, @@binlog_format, @@binlog_row_image")
    log_bin, binlog_format, row_image = cursor.fetchone()
    fix = (
        "Add to the server's configuration, under [mysqld]: log_bin = mysql-bin, "
        "binlog_format = ROW, binlog_row_image = FULL, server_id = 1; then restart it."
    )
    if not log_bin:
        raise CaptureConfigurationError(f"The binlog is off; change capture reads it. {fix}")
    if str(binlog_format).upper() != "ROW":
        raise CaptureConfigurationError(
            f"binlog_format is {binlog_format}; change capture needs row events (ROW). {fix} "
            "(SET GLOBAL binlog_format = 'ROW' works at once, until the next restart.)"
        )
    if str(row_image).upper() != "FULL":
        raise CaptureConfigurationError(
            f"binlog_row_image is {row_image}: `before` and `after` would miss columns. {fix} "
            "(SET GLOBAL binlog_row_image = 'FULL' works at once, until the next restart.)"
        )
    check_privileges(cursor)


#: Global privileges that let a user read the binlog (``COM_BINLOG_DUMP``)...
_DUMP = {"REPLICATION SLAVE", "ALL PRIVILEGES", "ALL"}
#: ...and see where it ends (``SHOW MASTER STATUS``; BINLOG MONITOR is MariaDB's new name).
_MONITOR = {"REPLICATION CLIENT", "BINLOG MONITOR", "SUPER", "ALL PRIVILEGES", "ALL"}


def global_privileges(grants: list[str]) -> set[str]:
    """The privileges of ``GRANT ... ON *.* TO ...`` lines, as upper-case names.

    Names are compared whole: ``REPLICATION SLAVE ADMIN`` is not ``REPLICATION SLAVE``.
    """
    found: set[str] = set()
    for grant in grants:
        text = grant.upper()
        if not text.startswith("GRANT ") or " ON *.* TO " not in text:
            continue
        listed = text[len("GRANT ") : text.index(" ON *.* TO ")]
        found.update(part.strip() for part in listed.split(","))
    return found


def check_privileges(cursor: Any) -> None:
    cursor.execute("SHOW GRANTS")
    privileges = global_privileges([row[0] for row in cursor.fetchall()])
    if privileges & _DUMP and privileges & _MONITOR:
        return
    cursor.execute("SELECT CURRENT_USER()")
    (user,) = cursor.fetchone()
    name, _, host = str(user).rpartition("@")
    missing = [
        privilege
        for privilege, accepted in (("REPLICATION SLAVE", _DUMP), ("REPLICATION CLIENT", _MONITOR))
        if not privileges & accepted
    ]
    raise CaptureConfigurationError(
        f"The user {user} lacks {' and '.join(missing)}, which reading the binlog needs. Run "
        f"GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '{name}'@'{host}';"
    )


def events_name_columns(cursor: Any) -> bool:
    """Whether row events name their columns (``binlog_row_metadata = FULL``); if not, say
    what that costs."""
    try:
        cursor.execute("SELECT @@binlog_row_metadata")
        (metadata,) = cursor.fetchone()
    except Exception:  # older than MariaDB 10.5 / MySQL 8: the setting does not exist
        metadata = "NO_LOG"
    if str(metadata).upper() == "FULL":
        return True
    logger.warning(
        "binlog_row_metadata is %s: row events do not name their columns, so capture names "
        "them from the table's definition, read again at each ALTER TABLE. That is exact "
        "while capture keeps up; set binlog_row_metadata = FULL so that changes read after a "
        "later schema change are labelled exactly too.",
        metadata,
    )
    return False


def reflect(cursor: Any, database: str, table: str) -> TableInfo:
    cursor.execute(
        "SELECT column_name, data_type, is_nullable = 'YES', column_key = 'PRI' "
        "FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
        "ORDER BY ordinal_position",
        (database, table),
    )
    rows = cursor.fetchall()
    if not rows:
        raise CaptureConfigurationError(
            f"The table {database}.{table} does not exist, or this user may not see it. Create "
            "it, fix table= (written database.table, e.g. app.orders), or grant the user "
            f"SELECT ON {database}.{table}."
        )
    columns = []
    for name, data_type, nullable, is_key in rows:
        kind = str(data_type).lower()
        if kind in _INTEGERS:
            python_type: Any = int
        elif kind in _FLOATS:
            python_type = float
        elif kind == "json":
            python_type = Any
        else:
            if kind not in _TEXT:
                logger.warning(
                    "Column %r of %s.%s has type %s, which change capture carries as text.",
                    name,
                    database,
                    table,
                    kind,
                )
            python_type = str
        columns.append(ColumnInfo(name, python_type, bool(nullable), bool(is_key), kind))
    return TableInfo(database, None, table, tuple(columns))


def check_key(info: TableInfo, *, snapshot: bool) -> None:
    """A snapshot tells rows apart by their primary key: a table without one is refused.

    Changes read from the binlog need no key: their ids come from their binlog position, and
    with ``binlog_row_image = FULL`` the old row in ``before`` is whole either way.
    """
    if info.key or not snapshot:
        return
    raise CaptureConfigurationError(
        f"The table {info.database}.{info.table} has no primary key. The first start reads "
        "the table's rows (op: r) and makes each one's event id from its key: without one, "
        "two equal rows would share an id and one would be dropped as a duplicate. Add a "
        f"key (ALTER TABLE {info.database}.{info.table} ADD COLUMN id BIGINT AUTO_INCREMENT "
        "PRIMARY KEY), or pass snapshot=False to stream changes only (`before` still holds "
        "the whole old row: binlog_row_image = FULL)."
    )


def ensure_positions_table(cursor: Any, database: str) -> None:
    """Where the confirmed binlog position of each capture is kept (MySQL has no slots)."""
    import pymysql

    try:
        try:
            cursor.execute(f"SELECT name, file, pos FROM {POSITIONS} LIMIT 0")
        except pymysql.err.ProgrammingError as exc:
            if exc.args[0] != NO_SUCH_TABLE:
                raise
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {POSITIONS} ("
                " name VARCHAR(191) PRIMARY KEY, file VARCHAR(255) NOT NULL, pos BIGINT NOT NULL,"
                " updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3))"
            )
    except pymysql.MySQLError as exc:
        cursor.execute("SELECT CURRENT_USER()")
        (user,) = cursor.fetchone()
        name, _, host = str(user).rpartition("@")
        raise CaptureConfigurationError(
            f"The user {user} cannot keep capture's position in {database}.{POSITIONS} "
            f"({exc.args[-1]}). Run GRANT CREATE, SELECT, INSERT, UPDATE ON "
            f"{database}.{POSITIONS} TO '{name}'@'{host}'; (or create that table as this "
            "package would, and grant only SELECT, INSERT, UPDATE on it)."
        ) from None


def json_value(value: Any) -> Any:
    """A value as mysql-replication or pymysql gives it, as JSON."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode()
        except UnicodeDecodeError:
            return bytes(value).hex()
    if isinstance(value, (set, frozenset)):
        return sorted(str(item) for item in value)
    if isinstance(value, (dict, list)):
        return value
    return str(value)
