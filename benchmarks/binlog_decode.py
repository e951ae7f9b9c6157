"""CPU per row of decoding MariaDB's binlog with the installed ``pymysqlreplication``.

    python -m benchmarks.binlog_decode [--dsn mysql://root@127.0.0.1:3306/mysql]

Commits 10,000 inserted rows and 10,000 updates (five columns: int, varchar, int, decimal,
datetime) to a database of its own, then reads them back from the binlog three times (not
blocking, only this table) and prints the CPU time per decoded row, best of three; the
decoding alone, without capture. It runs with whichever library provides
``pymysqlreplication``, so an alternative is measured by running this file in a virtual
environment that has it instead (see the decisions page). Not a timed test.
"""

from __future__ import annotations

import argparse
import time
import uuid
from importlib import metadata
from urllib.parse import unquote, urlsplit

import pymysql
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import XidEvent
from pymysqlreplication.row_event import UpdateRowsEvent, WriteRowsEvent


def library() -> str:
    """The distribution that provides ``pymysqlreplication`` here, with its version."""
    (name,) = metadata.packages_distributions()["pymysqlreplication"]
    return f"{name} {metadata.version(name)} (PyMySQL {metadata.version('PyMySQL')})"


def measure(dsn: str, rounds: int = 3) -> dict[str, object]:
    parts = urlsplit(dsn)
    server = {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": unquote(parts.username or "root"),
        "passwd": unquote(parts.password or ""),
    }
    database = f"bench_{uuid.uuid4().hex[:8]}"
    admin = pymysql.connect(autocommit=True, database="mysql", **server)  # type: ignore[arg-type]
    cursor = admin.cursor()
    cursor.execute(f"CREATE DATABASE {database}")
    try:
        cursor.execute(
            f"CREATE TABLE {database}.bench (id INT AUTO_INCREMENT PRIMARY KEY, "
            "item VARCHAR(50), n INT, amount DECIMAL(10, 2), at DATETIME(3))"
        )
        cursor.execute("SHOW MASTER STATUS")
        file, position = cursor.fetchone()[:2]
        for _ in range(10):
            cursor.execute(
                f"INSERT INTO {database}.bench (item, n, amount, at) "
                "SELECT CONCAT('item ', seq), seq, seq / 7, NOW(3) FROM seq_1_to_1000"
            )
        cursor.execute(f"UPDATE {database}.bench SET n = n + 1")
        per_row = []
        for _ in range(rounds):
            started = time.process_time()
            stream = BinLogStreamReader(
                connection_settings=server,
                server_id=987_654,
                resume_stream=True,
                blocking=False,
                log_file=file,
                log_pos=position,
                only_events=[WriteRowsEvent, UpdateRowsEvent, XidEvent],
                only_schemas=[database],
                only_tables=["bench"],
            )
            rows = sum(len(event.rows) for event in stream if not isinstance(event, XidEvent))
            stream.close()
            per_row.append((time.process_time() - started) / rows * 1e6)
    finally:
        cursor.execute(f"DROP DATABASE {database}")
        admin.close()
    return {
        "library": library(),
        "rows": rows,
        "cpu_us_per_row": round(min(per_row), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default="mysql://root@127.0.0.1:3306/mysql")
    print(measure(parser.parse_args().dsn))


if __name__ == "__main__":
    main()
