"""Startup checks of a PostgreSQL source, and the reflection of its table.

Every misconfiguration that would make capture fail later, or silently capture less, is found
here at startup and reported with the statement that fixes it.
"""

from __future__ import annotations

import logging
from typing import Any

from .errors import CaptureConfigurationError
from .pgtypes import column_type
from .table import ColumnInfo, TableInfo

logger = logging.getLogger("fastapi_streaming.cdc")

_COLUMNS = """
SELECT a.attname, COALESCE(base.typname, t.typname), COALESCE(base.typtype, t.typtype),
       NOT a.attnotnull,
       EXISTS (SELECT 1 FROM pg_index i
               WHERE i.indrelid = a.attrelid AND i.indisprimary AND a.attnum = ANY(i.indkey))
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type base ON t.typtype = 'd' AND base.oid = t.typbasetype
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


def connect(dsn: str, **options: Any) -> Any:
    """A psycopg2 connection, or an error that says what is wrong with the DSN."""
    import psycopg2

    try:
        return psycopg2.connect(dsn, **options)
    except psycopg2.OperationalError as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise CaptureConfigurationError(
            f"Cannot connect to the PostgreSQL source {_display(dsn)}: {detail}. Check the DSN "
            "(a libpq URL such as postgresql://user:password@host:5432/dbname) and that the "
            "server accepts connections from this host."
        ) from None


def check_server(cursor: Any) -> None:
    """wal_level and the REPLICATION privilege: logical replication needs both."""
    cursor.execute("SHOW wal_level")
    (wal_level,) = cursor.fetchone()
    if wal_level != "logical":
        raise CaptureConfigurationError(
            f"PostgreSQL runs with wal_level = {wal_level}; change capture reads the WAL "
            "through logical replication, which needs wal_level = logical. Run "
            "ALTER SYSTEM SET wal_level = logical; and restart PostgreSQL."
        )
    cursor.execute(
        "SELECT current_user, rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user"
    )
    user, allowed = cursor.fetchone()
    if not allowed:
        raise CaptureConfigurationError(
            f"The PostgreSQL role {user!r} may not use replication. Run "
            f"ALTER ROLE {_quote(user)} WITH REPLICATION; (as a superuser), or connect as a "
            "role that has it."
        )


def reflect(cursor: Any, table: str) -> tuple[TableInfo, str]:
    """The table's columns, and its replica identity (``d``, ``f``, ``n`` or ``i``)."""
    schema, _, name = table.rpartition(".")
    schema = schema or "public"
    qualified = f"{_quote(schema)}.{_quote(name)}"
    cursor.execute("SELECT to_regclass(%s), current_database()", (qualified,))
    found, database = cursor.fetchone()
    if found is None:
        raise CaptureConfigurationError(
            f"The table {schema}.{name} does not exist in the database {database!r}. Create it "
            "first, or fix table= (written schema.table, e.g. public.orders)."
        )
    cursor.execute("SELECT relreplident FROM pg_class WHERE oid = %s::regclass", (qualified,))
    (identity,) = cursor.fetchone()
    cursor.execute(_COLUMNS, (qualified,))
    columns = []
    for column, type_name, type_kind, nullable, is_key in cursor.fetchall():
        python_type, convert = column_type(column, type_name, type_kind, f"{schema}.{name}")
        columns.append(
            ColumnInfo(column, python_type, nullable, is_key, type_name, convert=convert)
        )
    info = TableInfo(database, schema, name, tuple(columns))
    if identity == "n" or (identity == "d" and not info.key):
        raise CaptureConfigurationError(
            f"The table {schema}.{name} has no primary key (and no replica identity). Once it "
            "is in a publication, PostgreSQL refuses UPDATE and DELETE on it, and a change's "
            "`before` could hold nothing. Add a primary key (then `before` holds the key "
            f"columns of the old row), or run ALTER TABLE {qualified} REPLICA IDENTITY FULL; "
            "(then `before` holds the whole old row, at the cost of writing it to the WAL)."
        )
    return info, identity


def check_routing(info: TableInfo, identity: str, parameters: tuple[str, ...]) -> None:
    """Every address parameter must be a column, present in deletes' old rows too."""
    names = {column.name for column in info.columns}
    missing = [parameter for parameter in parameters if parameter not in names]
    if missing:
        raise CaptureConfigurationError(
            f"The address parameters {missing} are not columns of {info.qualified_name}; "
            f"a change is routed by its row's columns: {sorted(names)}."
        )
    unkeyed = [parameter for parameter in parameters if parameter not in info.key]
    if unkeyed and identity != "f":
        raise CaptureConfigurationError(
            f"The address parameters {unkeyed} are not part of the primary key of "
            f"{info.qualified_name}, so a delete's `before` would not hold them and it could "
            "not be routed. Run ALTER TABLE "
            f"{_quote(info.schema or 'public')}.{_quote(info.table)} REPLICA IDENTITY FULL;"
        )


def ensure_publication(cursor: Any, info: TableInfo, publication: str, *, create: bool) -> None:
    """The publication exists and publishes the table (created when it is ours to create)."""
    qualified = f"{_quote(info.schema or 'public')}.{_quote(info.table)}"
    cursor.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,))
    if cursor.fetchone() is None:
        if not create:
            raise CaptureConfigurationError(
                f"The publication {publication!r} does not exist. Run CREATE PUBLICATION "
                f"{_quote(publication)} FOR TABLE {qualified}; or leave publication= out and "
                "one is created."
            )
        from psycopg2.errors import DuplicateObject, UniqueViolation

        try:
            cursor.execute(f"CREATE PUBLICATION {_quote(publication)} FOR TABLE {qualified}")
            logger.info("Created the publication %s for %s", publication, qualified)
            return
        except (DuplicateObject, UniqueViolation):
            # Another worker created it between our look and our create: PostgreSQL says
            # DuplicateObject once that one has committed, UniqueViolation while both race.
            pass
    cursor.execute(
        "SELECT 1 FROM pg_publication_tables WHERE pubname = %s AND schemaname = %s "
        "AND tablename = %s",
        (publication, info.schema, info.table),
    )
    if cursor.fetchone() is None:
        raise CaptureConfigurationError(
            f"The publication {publication!r} does not publish {info.qualified_name}. Run "
            f"ALTER PUBLICATION {_quote(publication)} ADD TABLE {qualified};"
        )


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _display(dsn: str) -> str:
    """The DSN without its password, for messages."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    if "://" in dsn and parts.password is not None:
        return urlunsplit(parts._replace(netloc=parts.netloc.replace(parts.password, "***")))
    if "://" in dsn:
        return dsn
    return " ".join(
        "password=***" if item.startswith("password=") else item for item in dsn.split()
    )
