"""Units of a plan reserved ahead in Redis: publishes spend them without a round trip, and
workers sharing a principal's counters never admit more than its plan between them.

Each limiter below stands for one worker; they share the real Redis on 127.0.0.1:6379, under a
namespace of the test's own.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import pytest
from limits.aio.strategies import FixedWindowRateLimiter

from fastapi_streaming.limits import Limiter, Limits, Plan, QuotaExceeded
from fastapi_streaming.limits.limiter import Meter
from tests.support.turns import counting_turns

pytestmark = pytest.mark.redis

REDIS_URL = "redis://127.0.0.1:6379/0"


def worker(plan: Plan, namespace: str, storage: str = REDIS_URL) -> Limiter:
    return Limiter(Limits(plan=plan, storage=storage, namespace=namespace, flush_interval=3600))


async def close(*limiters: Limiter) -> None:
    for limiter in limiters:
        await limiter.stop()
        storage: Any = limiter.storage
        await storage.bridge.get_connection().aclose()


async def publish(limiter: Limiter, meter: Meter) -> bool:
    try:
        await limiter.charge(meter, 1, publish=True)
    except QuotaExceeded:
        return False
    return True


async def admitted_by_two_workers(plan: Plan, namespace: str, attempts: int) -> int:
    """Publishes of one principal spread over two workers, ten at a time on each, with a
    moment between rounds for reservations to land; how many were let through."""
    one, two = worker(plan, namespace), worker(plan, namespace)
    meter = Meter(plan, "ann", namespace)
    admitted = 0
    try:
        for _ in range(attempts // 20):
            outcomes = await asyncio.gather(
                *(publish(limiter, meter) for limiter in (one, two) for _ in range(10))
            )
            admitted += sum(outcomes)
            await asyncio.sleep(0.002)
        assert one.budgets is not None and one.budgets.reservations > 0
        assert two.budgets is not None and two.budgets.reservations > 0
    finally:
        await close(one, two)
    return admitted


async def test_two_workers_sharing_a_quota_never_admit_more_than_it(namespace: str) -> None:
    plan = Plan(name="shared", quota="300/minute", publish_rate="100000/minute")
    admitted = await admitted_by_two_workers(plan, namespace, 800)
    # Refused early by at most the other worker's block (a fiftieth of the limit: 6).
    assert 300 - 6 <= admitted <= 300


async def test_two_workers_sharing_a_publish_rate_never_admit_more_than_it(
    namespace: str,
) -> None:
    plan = Plan(name="rated", quota="1000000/day", publish_rate="200/minute")
    admitted = await admitted_by_two_workers(plan, namespace, 600)
    assert 200 - 4 <= admitted <= 200


async def test_limits_under_a_hundred_are_charged_exactly_on_every_worker(
    namespace: str,
) -> None:
    plan = Plan(name="small", quota="99/minute", publish_rate="5/minute")
    one, two = worker(plan, namespace), worker(plan, namespace)
    meter = Meter(plan, "ann", namespace)
    try:
        outcomes = [await publish(limiter, meter) for limiter in (one, two) * 4]
        assert outcomes == [True] * 5 + [False] * 3  # the sixth is refused, wherever it lands
        assert one.budgets is not None and one.budgets.reservations == 0
    finally:
        await close(one, two)


async def test_a_publish_with_units_reserved_does_not_wait_for_redis(namespace: str) -> None:
    plan = Plan(name="busy", quota="1000000/day", publish_rate="100000/minute")
    limiter = worker(plan, namespace)
    meter = Meter(plan, "ann", namespace)
    try:
        async with counting_turns() as loop:
            await limiter.charge(meter, 1, publish=True)  # nothing reserved yet: exact charge
            budgets = limiter.budgets
            assert budgets is not None
            await budgets.settled()  # the first reservation lands
            assert budgets.reservations == 1
            at_once = 0
            for _ in range(300):
                before = loop.turns
                await limiter.charge(meter, 1, publish=True)
                at_once += loop.turns == before  # the loop never turned: no round trip
                await asyncio.sleep(0)  # one turn: a reservation's answer may land meanwhile
        # All but the few publishes that found the budget empty while the block was growing
        # went without a round trip, and the reservations were few.
        assert at_once >= 280
        assert budgets.reservations <= 20
        assert limiter.counted["busy"] == 301
    finally:
        await close(limiter)


async def test_budgets_running_low_together_are_reserved_in_one_round_trip(
    namespace: str,
) -> None:
    plan = Plan(name="crowd", quota="1000000/day", publish_rate="100000/minute")
    limiter = worker(plan, namespace)
    meters = [Meter(plan, name, namespace) for name in ("a", "b", "c", "d")]
    try:
        await asyncio.gather(*(limiter.charge(meter, 1, publish=True) for meter in meters))
        budgets = limiter.budgets
        assert budgets is not None
        await budgets.settled()
        assert budgets.reservations == 1  # four principals' blocks in one script call
        for meter in meters:  # and each got its own
            before = limiter.counted["crowd"]
            assert limiter._spend_reserved(meter, 1)
            assert limiter.counted["crowd"] == before + 1
    finally:
        await close(limiter)


async def test_units_left_are_given_back_when_the_worker_stops(namespace: str) -> None:
    plan = Plan(name="kept", quota="1000/minute", publish_rate="100000/minute")
    limiter = worker(plan, namespace)
    meter = Meter(plan, "ann", namespace)
    storage: Any = limiter.storage
    assert plan.quota_item is not None
    try:
        for _ in range(40):
            await limiter.charge(meter, 1, publish=True)
            await asyncio.sleep(0.001)
        stats = await FixedWindowRateLimiter(storage).get_window_stats(plan.quota_item, *meter.ids)
        assert stats.remaining < 1000 - 40  # reserved beyond what was spent
    finally:
        await close(limiter)
    checker = worker(plan, namespace)
    try:
        stats = await FixedWindowRateLimiter(checker.storage).get_window_stats(
            plan.quota_item, *meter.ids
        )
        assert stats.remaining == 1000 - 40
    finally:
        await close(checker)


async def test_unreachable_counters_let_publishes_through_with_a_warning(
    namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    plan = Plan(name="down", quota="1000000/day", publish_rate="100000/minute")
    limiter = worker(plan, namespace, storage=f"redis://127.0.0.1:{port}/0")
    meter = Meter(plan, "ann", namespace)
    try:
        with caplog.at_level(logging.WARNING, logger="fastapi_streaming.limits"):
            for _ in range(5):
                await limiter.charge(meter, 1, publish=True)
                await asyncio.sleep(0.01)
    finally:
        await limiter.stop()
    assert limiter.counted["down"] == 0  # let through, not counted
    assert any("unreachable" in record.getMessage() for record in caplog.records)
