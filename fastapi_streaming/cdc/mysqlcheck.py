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
            f"binlog_format is {binlog_format}; change capture needs row events (ROW). {fix}"
        )
    if str(row_image).upper() != "FULL":
        raise CaptureConfigurationError(
            f"binlog_row_image is {row_image}: `before` and `after` would miss columns. {fix}"
        )
    cursor.execute("SHOW GRANTS")
    grants = " ".join(row[0] for row in cursor.fetchall()).upper()
    if "ALL PRIVILEGES ON *.*" not in grants and "REPLICATION SLAVE" not in grants:
        cursor.execute("SELECT CURRENT_USER()")
        (user,) = cursor.fetchone()
        raise CaptureConfigurationError(
            f"The user {user} may not read the binlog. Run GRANT REPLICATION SLAVE, "
            f"REPLICATION CLIENT ON *.* TO {user};"
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
            f"The table {database}.{table} does not exist. Create it first, or fix table= "
            "(written database.table, e.g. app.orders)."
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


def ensure_positions_table(cursor: Any) -> None:
    """Where the confirmed binlog position of each capture is kept (MySQL has no slots)."""
    cursor.execute(
        f"CREATE TABLE IF NOT EXISTS {POSITIONS} ("
        " name VARCHAR(191) PRIMARY KEY, file VARCHAR(255) NOT NULL, pos BIGINT NOT NULL,"
        " updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3))"
    )


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
