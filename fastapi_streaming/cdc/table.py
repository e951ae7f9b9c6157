"""A captured table's columns: their JSON types, the row model made from them, masking.

Sources reflect a table into :class:`TableInfo` once at startup. The row model made from it is
what the AsyncAPI document shows for the topic when the user gives no model of their own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

logger = logging.getLogger("fastapi_streaming.cdc")

#: What a masked column's value becomes before the change leaves the process.
MASK = "****"


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    #: The Python type values are converted to (``str`` for types carried as text).
    python_type: Any
    nullable: bool
    is_key: bool
    #: The database's name for the type, for messages.
    type_name: str = ""
    #: Turns the database's text form of a value into ``python_type``.
    convert: Callable[[str], Any] = field(default=str, repr=False, compare=False)


@dataclass(frozen=True)
class TableInfo:
    database: str
    schema: str | None
    table: str
    columns: tuple[ColumnInfo, ...]

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns if column.is_key)

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.table}" if self.schema else self.table

    def row_model(
        self, *, exclude: Iterable[str] = (), mask: Iterable[str] = ()
    ) -> type[BaseModel]:
        """A pydantic model of the table's rows, as they leave the process.

        Fields are named after the columns through aliases, so any column name works (even
        ``schema`` or one with a space).
        """
        excluded, masked = set(exclude), set(mask)
        fields: dict[str, Any] = {}
        for index, column in enumerate(self.columns):
            if column.name in excluded:
                continue
            kind: Any = str if column.name in masked else column.python_type
            if column.nullable:
                fields[f"column_{index}"] = (kind | None, Field(None, alias=column.name))
            else:
                fields[f"column_{index}"] = (kind, Field(alias=column.name))
        name = "".join(part.capitalize() for part in self.table.replace("-", "_").split("_"))
        return create_model(
            f"{name or 'Table'}Row",
            __config__=ConfigDict(
                populate_by_name=True, serialize_by_alias=True, title=f"{self.qualified_name} row"
            ),
            **fields,
        )


def shape_row(
    row: Mapping[str, Any] | None, *, exclude: frozenset[str], mask: frozenset[str]
) -> dict[str, Any] | None:
    """Leave out and mask columns: nothing of them reaches the broker or a handler."""
    if row is None:
        return None
    if not exclude and not mask:
        return dict(row)
    return {
        name: (MASK if name in mask and value is not None else value)
        for name, value in row.items()
        if name not in exclude
    }
