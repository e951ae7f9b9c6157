"""Event time: reading a timestamp out of an event, and logging bad ones without flooding.

A derived topic's ``time=`` is a field name (``"ts"``), a function of the event
(``lambda quote: quote.time``) or None for processing time. A timestamp may be a number of
epoch seconds, a :class:`~datetime.datetime` or an ISO 8601 string; a naive datetime is read as
UTC. Anything else makes the event unusable for windows: it is skipped and counted.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from .aggregates import pick

#: What ``time=`` may be.
TimeSpec = str | Callable[[Any], Any] | None


class BadTime(ValueError):
    """An event has no usable time."""


def event_time(event: Any, spec: TimeSpec) -> float:
    """The event's time in epoch seconds, or :class:`BadTime` saying what is wrong."""
    try:
        raw = pick(event, spec)
    except (KeyError, AttributeError, TypeError) as exc:
        raise BadTime(f"the event has no time field {spec!r} ({exc!r})") from None
    except Exception as exc:
        raise BadTime(f"the time function failed: {exc!r}") from None
    return to_epoch(raw)


def to_epoch(raw: Any) -> float:
    if isinstance(raw, bool):
        raise BadTime(f"{raw!r} is not a time")
    if isinstance(raw, (int, float)):
        value = float(raw)
    elif isinstance(raw, datetime):
        value = (raw if raw.tzinfo else raw.replace(tzinfo=timezone.utc)).timestamp()
    elif isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise BadTime(f"{raw!r} is neither epoch seconds nor an ISO 8601 time") from None
        value = (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()
    else:
        raise BadTime(f"{raw!r} is neither epoch seconds nor an ISO 8601 time")
    if not math.isfinite(value):
        raise BadTime(f"{raw!r} is not a finite time")
    return value


class RateLimitedLog:
    """Logs the first problem at once, then at most one summary line per ``every`` seconds."""

    def __init__(self, logger: logging.Logger, every: float = 10.0) -> None:
        self.logger = logger
        self.every = every
        self.count = 0
        self._suppressed = 0
        self._last = float("-inf")

    def warning(self, message: str, *args: Any) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self._last < self.every:
            self._suppressed += 1
            return
        if self._suppressed:
            message += " (and %d more like it since the last report)"
            args = (*args, self._suppressed)
        self._suppressed = 0
        self._last = now
        self.logger.warning(message, *args)
