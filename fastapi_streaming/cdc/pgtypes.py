"""PostgreSQL column types: their Python types and how their text form converts.

``pgoutput`` sends values in PostgreSQL's text format. Numbers, booleans and JSON become their
JSON equivalents; types with an exact text form that JSON has no type for (numeric, dates,
times, UUIDs, network addresses, bytea in hex) stay text, as Debezium's ``string`` modes do.
Anything else is carried as text too, with a warning, so an exotic column never stops capture.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("fastapi_streaming.cdc")


def _bool(text: str) -> bool:
    return text == "t"


def _float(text: str) -> float | str:
    value = float(text)
    return text if math.isnan(value) or math.isinf(value) else value  # JSON has no NaN


Converter = Callable[[str], Any]

#: type name -> (Python type, converter)
_NUMERIC: dict[str, tuple[Any, Converter]] = {
    "bool": (bool, _bool),
    "int2": (int, int),
    "int4": (int, int),
    "int8": (int, int),
    "oid": (int, int),
    "float4": (float | str, _float),
    "float8": (float | str, _float),
    "json": (Any, json.loads),
    "jsonb": (Any, json.loads),
}

#: Types whose text form is the natural JSON value.
_TEXT = {
    "text", "varchar", "bpchar", "char", "name", "citext", "numeric", "money", "uuid",
    "date", "time", "timetz", "timestamp", "timestamptz", "interval", "bytea",
    "inet", "cidr", "macaddr", "macaddr8", "xml", "bit", "varbit", "tsvector",
}  # fmt: skip


def column_type(name: str, type_name: str, type_kind: str, table: str) -> tuple[Any, Converter]:
    """The Python type and text converter of a column of ``type_name``.

    ``type_kind`` is ``pg_type.typtype``: enums (``e``) and domains over text are plain text.
    """
    if type_name in _NUMERIC:
        return _NUMERIC[type_name]
    if type_name in _TEXT or type_kind == "e":
        return str, str
    logger.warning(
        "Column %r of %s has type %s, which change capture carries as its text form.",
        name,
        table,
        type_name,
    )
    return str, str


#: The built-in types with a non-text JSON form, by OID (stable across PostgreSQL versions).
_BUILTIN_OIDS = {
    16: "bool", 20: "int8", 21: "int2", 23: "int4", 26: "oid",
    700: "float4", 701: "float8", 114: "json", 3802: "jsonb",
}  # fmt: skip


def converter_for_oid(type_oid: int) -> Converter:
    """The converter of a column known only from a Relation message (added while streaming)."""
    name = _BUILTIN_OIDS.get(type_oid)
    return _NUMERIC[name][1] if name is not None else str
