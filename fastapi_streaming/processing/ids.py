"""Deterministic ids of derived events.

A derived event's id depends only on what it is (the derived address, the key and window and
revision, or the source event it was mapped from), so the same result computed twice, by two
owners around a failover, has the same id: a resuming client recognises it. Ids have the shape
of a UUID version 7 whose time is the window's end (or the source event's time), so they sort
with the other ids of the API and resume works across topics.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Hashable, Sequence

from ..replay import uuid7_millis

_RAND_BITS = 74  # 12 bits of rand_a, 62 of rand_b


def _uuid7(millis: int, material: str) -> str:
    digest = hashlib.blake2b(material.encode(), digest_size=10).digest()
    rand = int.from_bytes(digest, "big") & (2**_RAND_BITS - 1)
    value = (
        (max(millis, 0) & (2**48 - 1)) << 80
        | 0x7 << 76
        | (rand >> 62) << 64
        | 0x2 << 62
        | (rand & (2**62 - 1))
    )
    return str(uuid.UUID(int=value))


def window_event_id(
    address: str,
    key: Sequence[Hashable],
    start: float,
    end: float,
    revision: int,
    sequence: int | None = None,
) -> str:
    """The id of one emission of one window of one key of a derived topic."""
    material = f"{address}\n{list(key)!r}\n{start!r}\n{end!r}\n{sequence!r}\n{revision}"
    return _uuid7(int(end * 1000), material)


def mapped_event_id(address: str, source_id: str) -> str:
    """The id of the event a filter/map derived from the source event ``source_id``."""
    millis = uuid7_millis(source_id)
    material = f"{address}\n{source_id}"
    if millis is None:  # written by another system: no time to sort by, but still stable
        return hashlib.blake2b(material.encode(), digest_size=16).hexdigest()
    return _uuid7(millis, material)
