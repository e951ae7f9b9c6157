"""The benchmark event: ~200 bytes of JSON that carry a sequence number and a send time.

Every server passes the event's JSON through (re-encoded or not), so clients find ``seq`` and
``ts`` with one regular expression over whatever arrived, whatever the framing (SSE ``data:``
lines, WebSocket text frames, RPC envelopes). Decoding the JSON of every event would make the
load client, not the server, the bottleneck.
"""

from __future__ import annotations

import json
import re
import time

#: Total size of one event's JSON body, as a publisher sends it.
EVENT_SIZE = 200

#: Sequence number of priming events: sent before measuring, until every client has one.
PROBE_SEQ = -1

#: ``seq`` then ``ts`` (microseconds since the epoch), with or without spaces after separators.
FIELDS = re.compile(rb'"seq":\s*(-?\d+),\s*"ts":\s*(\d+)')


def now_us() -> int:
    """Wall-clock microseconds: the one clock every process on this machine shares."""
    return time.time_ns() // 1000


def encode(seq: int, ts_us: int | None = None) -> bytes:
    """One event body of exactly :data:`EVENT_SIZE` bytes."""
    stamp = now_us() if ts_us is None else ts_us
    head = b'{"seq":%d,"ts":%d,"pad":"' % (seq, stamp)
    return head + b"x" * (EVENT_SIZE - len(head) - 2) + b'"}'


def decode(body: bytes) -> tuple[int, int]:
    """``(seq, ts)`` of one event; for tests and servers that need the values."""
    data = json.loads(body)
    return int(data["seq"]), int(data["ts"])
