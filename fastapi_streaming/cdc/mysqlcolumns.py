"""Which column each value of a MySQL/MariaDB row event belongs to, across schema changes.

A row event carries values in column order. With ``binlog_row_metadata = FULL`` (MariaDB
10.5+, MySQL 8) it names its columns too, and each value is labelled by its own event: exact,
however far behind capture reads. Otherwise the names come from the table's definition, read
at startup and read again whenever the binlog shows an ``ALTER TABLE`` (or ``RENAME``,
``CREATE``...) of the table, or a row event whose column count differs from the names known.
That is right while capture keeps up; a capture reading old events after a later schema
change could label them with the new columns, which is why the startup check recommends
``FULL`` (and values are never matched to names when the counts differ).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from .mysqlcheck import json_value

logger = logging.getLogger("fastapi_streaming.cdc")

#: Statements that can change a table's columns.
_DDL = re.compile(r"^\s*(ALTER|CREATE|RENAME|DROP|TRUNCATE)\s+TABLE\b", re.IGNORECASE)
#: What mysql-replication calls a column whose name it does not know.
UNNAMED = "UNKNOWN_COL"


class ColumnLabels:
    """The names of one table's columns, as its row events are read in order.

    ``table`` is ``database.table``; ``read_names()`` reads the names from the table's current
    definition.
    """

    def __init__(
        self,
        table: str,
        names: list[str],
        read_names: Callable[[], list[str]],
        *,
        named_events: bool,
    ) -> None:
        self.table = table
        bare = table.rpartition(".")[2]
        self._names_table = re.compile(rf"(^|[\s.`]){re.escape(bare)}([\s`;(,]|$)", re.IGNORECASE)
        self.names = names
        self.read_names = read_names
        self.named_events = named_events
        self._warned = False

    def statement(self, query: str) -> bool:
        """A statement read from the binlog: True if it may have changed the columns (then
        they are read again)."""
        if not _DDL.match(query) or not self._names_table.search(query):
            return False
        return self._reread()

    def label(self, values: dict[Any, Any]) -> tuple[dict[str, Any], bool]:
        """The row by column name, and whether the columns changed since the last row."""
        if self.named_events and not any(str(name).startswith(UNNAMED) for name in values):
            names = [str(name) for name in values]
            changed, self.names = names != self.names, names
            row = {
                name: json_value(value) for name, value in zip(names, values.values(), strict=True)
            }
            return row, changed
        ordered = list(values.values())
        changed = False
        if len(ordered) != len(self.names):
            changed = self._reread()
        if len(ordered) != len(self.names):
            if not self._warned:
                self._warned = True
                logger.warning(
                    "A row event of %s has %d columns and the table %d: its values are "
                    "labelled by position (%s0...). Set binlog_row_metadata = FULL so that "
                    "events name their columns.",
                    self.table,
                    len(ordered),
                    len(self.names),
                    UNNAMED,
                )
            return {str(name): json_value(value) for name, value in values.items()}, changed
        return {name: json_value(v) for name, v in zip(self.names, ordered, strict=True)}, changed

    def _reread(self) -> bool:
        try:
            names = self.read_names()
        except Exception as exc:
            logger.warning("Could not read the columns of %s: %s", self.table, exc)
            return False
        changed, self.names = names != self.names, names
        return changed
