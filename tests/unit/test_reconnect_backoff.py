"""The pause between reconnection attempts never exceeds the maximum delay."""

from __future__ import annotations

import random

from fastapi_streaming.brokers.connection import FIRST_RETRY_DELAY, MAX_RETRY_DELAY, retry_pause


def test_the_pause_stays_between_half_the_delay_and_the_delay() -> None:
    """A process hears its returning broker at most MAX_RETRY_DELAY seconds after it is back."""
    random.seed(17)
    for delay in (FIRST_RETRY_DELAY, 1.0, MAX_RETRY_DELAY):
        pauses = [retry_pause(delay) for _ in range(2000)]
        assert all(delay / 2 <= pause <= delay for pause in pauses), (delay, max(pauses))
        assert max(pauses) - min(pauses) > delay / 4, "processes must spread their attempts"
