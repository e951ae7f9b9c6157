"""Usage analytics from Python: who used the API most in the last hour."""

from __future__ import annotations

import time
from typing import Any

from fastapi_streaming import StreamingAPI, summarize


async def top_consumers(streaming: StreamingAPI, minutes: int = 60) -> list[dict[str, Any]]:
    """The ten principals that were handed and published the most events, per plan."""
    records = await streaming.usage(since=time.time() - minutes * 60)
    totals = summarize(records, by=("principal", "plan"))
    return [total.as_dict() for total in totals[:10]]


async def minutes_of(streaming: StreamingAPI, principal: str) -> list[tuple[str, int, int]]:
    """One principal's events per minute: (minute, delivered, published)."""
    records = await streaming.usage(principal=principal)
    per_minute: dict[str, list[int]] = {}
    for record in records:
        counts = per_minute.setdefault(record.start.strftime("%H:%M"), [0, 0])
        counts[0] += record.delivered
        counts[1] += record.published
    return [(minute, delivered, published) for minute, (delivered, published) in per_minute.items()]
