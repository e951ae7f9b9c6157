"""Standard JSON in and out: what clients send is parsed safely, what they get is valid JSON.

Python's ``json`` and pydantic both accept ``NaN``, ``Infinity`` and ``-Infinity`` and write
them back out, but they are not JSON (RFC 8259): a browser's ``JSON.parse`` throws on the whole
message. So non-standard numbers are refused on the way in (422) and can never be written on
the way out. Parsing client input also never lets ``RecursionError`` (a deeply nested
document) or any other parser failure escape as a crash: it becomes a :class:`ValueError`
the transport answers like any malformed message.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pydantic_core

#: What pydantic-style error lists say about a non-standard number.
NON_STANDARD_NUMBER = (
    "NaN, Infinity and numbers too large for a double are not JSON numbers; "
    "send a finite number (or null)"
)


class NonStandardNumber(ValueError):
    """A document holds NaN or ±Infinity, which JSON does not have."""

    def __init__(self) -> None:
        super().__init__(NON_STANDARD_NUMBER)

    def detail(self) -> list[dict[str, Any]]:
        """The 422 detail, shaped like pydantic's error list."""
        return [{"type": "non_standard_number", "loc": ["body"], "msg": NON_STANDARD_NUMBER}]


def _refuse_constant(name: str) -> Any:
    raise NonStandardNumber()


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400
        raise NonStandardNumber()
    return value


def loads(data: str | bytes) -> Any:
    """Parse a client's JSON document; any failure is a :class:`ValueError` with a reason.

    :class:`NonStandardNumber` for NaN and ±Infinity (and numbers beyond a double's range).
    """
    try:
        return json.loads(data, parse_constant=_refuse_constant, parse_float=_finite_float)
    except ValueError:
        raise
    except RecursionError:
        raise ValueError("the document is nested too deeply") from None
    except Exception as exc:  # anything else the parser may raise on hostile input
        raise ValueError(f"the document cannot be parsed ({type(exc).__name__})") from None


def check_standard(data: str | bytes) -> None:
    """Raise :class:`NonStandardNumber` if a JSON document (already known to parse) has one.

    The common case costs two substring searches; only a document that mentions ``NaN`` or
    ``Infinity`` (perhaps inside a string) is parsed again to find out.
    """
    raw = data.encode() if isinstance(data, str) else data
    if b"NaN" not in raw and b"Infinity" not in raw:
        return
    try:
        pydantic_core.from_json(raw, allow_inf_nan=False)
    except ValueError:  # it parses with them allowed, so they are what fails it now
        raise NonStandardNumber() from None


def dumps(value: Any) -> bytes:
    """``value`` as JSON, or :class:`NonStandardNumber` if it holds NaN or ±Infinity."""
    data = pydantic_core.to_json(value)
    check_standard(data)
    return data
