"""Charging plans' counters in Redis in as few round trips as possible.

Every ``flush_interval`` the limiter charges each principal the events its connections were
sent. One ``hit`` of the ``limits`` library per principal is one round trip each: with 1,000
principals on Redis, a flush measured 78 ms of CPU and ~170 ms of waiting, every second. The
library's fixed-window script (``INCRBY`` and, on a new window, ``EXPIRE``) once per principal
in one pipeline still cost 16 ms of CPU a flush, most of it redis-py packing and parsing 1,000
commands; so the flush sends one script that does the same for many counters at once
(:data:`INCR_EXPIRE_MANY`), a command per :data:`CHUNK` principals, and the counters and their
keys stay exactly the library's. Publishes under a plan with both a publish rate and a quota
ask both in one script call too, and publishes that arrive together share it
(:class:`PublishCharges`). Storages this cannot batch (memory, a cluster, another client
library) are charged one by one, as before.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from .timeouts import bounded

#: Whatever the caller keys its charges by (the limiter's meters).
M = TypeVar("M")

logger = logging.getLogger("fastapi_streaming.limits")


def pipelined_counters(storage: object) -> Any | None:
    """The Redis bridge of a ``limits`` RedisStorage on redis-py, when its fixed-window script
    can be pipelined; None otherwise."""
    bridge = getattr(storage, "bridge", None)
    if bridge is None or type(bridge).__name__ != "RedispyBridge":
        return None
    needed = ("lua_incr_expire", "prefixed_key", "get_connection")
    if not all(hasattr(bridge, name) for name in needed):
        return None
    return bridge


#: The ``limits`` library's ``incr_expire.lua`` for every counter in ``KEYS``: ``ARGV`` holds
#: each one's expiry and amount in turn; returns each counter's new value.
INCR_EXPIRE_MANY = """
local totals = {}
for i, key in ipairs(KEYS) do
    local amount = tonumber(ARGV[2 * i])
    local current = redis.call("incrby", key, amount)
    if tonumber(current) == amount then
        redis.call("expire", key, ARGV[2 * i - 1])
    end
    totals[i] = current
end
return totals
"""

#: Counters per script call: long enough to share the per-command cost, short enough that
#: Redis, which runs a script alone, is never held for long (~0.3 ms for 500 counters).
CHUNK = 500

#: The scripts registered, per redis-py client (a storage has one) and script.
_scripts: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def registered(client: Any, source: str) -> Any:
    """``source`` as a redis-py script of ``client`` (sent by its hash; loaded when missing)."""
    scripts = _scripts.setdefault(client, {})
    script = scripts.get(source)
    if script is None:
        script = scripts[source] = client.register_script(source)
    return script


async def incr_many(bridge: Any, charges: Sequence[tuple[str, int, int]]) -> list[int]:
    """Add ``amount`` to each ``(key, expiry, amount)`` counter in one round trip; return each
    counter's new value (what ``Storage.incr`` returns one by one)."""
    client = bridge.get_connection()
    script = registered(client, INCR_EXPIRE_MANY)
    pipe = client.pipeline(transaction=False)
    prefixed = bridge.prefixed_key
    for start in range(0, len(charges), CHUNK):
        chunk = charges[start : start + CHUNK]
        args: list[int] = []
        for _, expiry, amount in chunk:
            args += (expiry, amount)
        await _queue(script(keys=[prefixed(key) for key, _, _ in chunk], args=args, client=pipe))
    return [int(value) for totals in await pipe.execute() for value in totals]


async def hit_quotas(
    storage: object,
    charges: Sequence[tuple[M, Any, int]],
    counter: Callable[[M], str],
    one_by_one: Callable[[M, Any, int], Awaitable[bool]],
) -> list[bool]:
    """Charge each ``(meter, fixed-window item, events)``; return whether each still fits.

    In one round trip on a redis-py ``RedisStorage`` (``counter(meter)`` is the key the
    ``limits`` library gives the meter's counter), else with ``one_by_one`` for each charge.
    """
    bridge = pipelined_counters(storage)
    if bridge is None or len(charges) < 2:
        return [await one_by_one(meter, item, events) for meter, item, events in charges]
    keyed = [(counter(meter), item.get_expiry(), events) for meter, item, events in charges]
    try:
        totals = await bounded(incr_many(bridge, keyed))
    except Exception:
        # Counters that cannot be reached do not take the API down with them.
        logger.warning("Limits storage unreachable; %d charges not counted", len(charges))
        return [True] * len(charges)
    return [total <= item.amount for (_, item, _), total in zip(charges, totals, strict=True)]


#: One publish to charge: its rate's and its quota's identifiers, the plan's rate and quota,
#: the cost.
PublishCharge = tuple[tuple[str, ...], tuple[str, ...], Any, Any, int]

#: For each publish, the ``limits`` library's ``acquire_moving_window.lua`` (one entry, stamped
#: no older than the newest: see :mod:`.budgets`) on its rate's counter and, only if the rate
#: lets it through, ``incr_expire.lua`` on its quota's. ``KEYS`` holds each publish's rate
#: counter and quota counter in turn; ``ARGV`` the time, then each publish's rate amount, rate
#: expiry, quota expiry and cost. Returns, for each, the quota counter's new value, or -1 when
#: the rate refused it (and its quota was not charged).
CHARGE_PUBLISHES = """
local now = tonumber(ARGV[1])
local answers = {}
for i = 1, #KEYS / 2 do
    local rate, quota = KEYS[2 * i - 1], KEYS[2 * i]
    local at = 4 * i - 2
    local limit = tonumber(ARGV[at])
    local expiry = tonumber(ARGV[at + 1])
    local entry = redis.call("lindex", rate, limit - 1)
    if entry and tonumber(entry) >= now - expiry then
        answers[i] = -1
    else
        -- Never older than the newest entry (a budget's entries are stamped ahead), so the
        -- list stays ordered as the check above reads it.
        local stamp = now
        local newest = tonumber(redis.call("lindex", rate, 0))
        if newest and newest > stamp then stamp = newest end
        redis.call("lpush", rate, stamp)
        redis.call("ltrim", rate, 0, limit - 1)
        redis.call("expire", rate, math.ceil(stamp - now + expiry))
        local cost = tonumber(ARGV[at + 3])
        local total = redis.call("incrby", quota, cost)
        if tonumber(total) == cost then
            redis.call("expire", quota, ARGV[at + 2])
        end
        answers[i] = total
    end
end
return answers
"""


class PublishCharges:
    """Publishes charged in the same moment go to Redis together, in one command.

    A publish under a plan with a publish rate and a quota asks both (the library's
    moving-window and fixed-window scripts, run in turn by :data:`CHARGE_PUBLISHES`: the quota
    is charged only if the rate lets the publish through, so the counters end as if the two
    had been asked one after the other). Publishes that arrive together (pipelined POSTs,
    several sockets) are asked in the same command, collected until the event loop's next
    turn as the broker's publishes are (:mod:`fastapi_streaming.brokers.redis_direct`). So they
    also reach the broker together, and the fan-out hands them to each client in one write
    instead of one write each.

    Each turn of the event loop a publish waits here is a turn of a busy server's loop (a
    write to every client with events waiting): the batch starts as a task at once (one turn,
    not a callback that starts it, two), and goes as one script call, not a pipeline.
    """

    def __init__(self, bridge: Any) -> None:
        self.bridge = bridge
        self._waiting: list[tuple[PublishCharge, asyncio.Future[tuple[bool, bool]]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._script = registered(bridge.get_connection(), CHARGE_PUBLISHES)

    async def charge(
        self,
        rate_ids: tuple[str, ...],
        quota_ids: tuple[str, ...],
        rate: Any,
        quota: Any,
        cost: int,
    ) -> tuple[bool, bool]:
        """Whether the rate and the quota let this publish through."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[bool, bool]] = loop.create_future()
        self._waiting.append(((rate_ids, quota_ids, rate, quota, cost), future))
        if len(self._waiting) == 1:
            # Its first step comes after every callback already due, so the publishes of this
            # turn are all in the batch by then.
            task = asyncio.create_task(self._send(), name="fastapi-streaming plan charges")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _send(self) -> None:
        batch, self._waiting = self._waiting, []
        if not batch:
            return
        try:
            answers = await bounded(self._ask([charge for charge, _ in batch]))
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(
                        exc if isinstance(exc, Exception) else ConnectionError("cancelled")
                    )
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), answer in zip(batch, answers, strict=True):
            if not future.done():
                future.set_result(answer)

    async def _ask(self, charges: list[PublishCharge]) -> list[tuple[bool, bool]]:
        bridge = self.bridge
        prefixed = bridge.prefixed_key
        calls = []
        for start in range(0, len(charges), CHUNK):
            keys: list[str] = []
            args: list[float] = [time.time()]
            for rate_ids, ids, rate, quota, cost in charges[start : start + CHUNK]:
                keys += (prefixed(rate.key_for(*rate_ids)), prefixed(quota.key_for(*ids)))
                args += (rate.amount, rate.get_expiry(), quota.get_expiry(), cost)
            calls.append((keys, args))
        if len(calls) == 1:
            keys, args = calls[0]
            totals = await self._script(keys=keys, args=args)
        else:
            pipe = bridge.get_connection().pipeline(transaction=False)
            for keys, args in calls:
                await _queue(self._script(keys=keys, args=args, client=pipe))
            totals = [total for chunk in await pipe.execute() for total in chunk]
        return [
            (False, True) if int(total) < 0 else (True, int(total) <= quota.amount)
            for (_, _, _, quota, _), total in zip(charges, totals, strict=True)
        ]


async def _queue(queued: Any) -> None:
    if inspect.isawaitable(queued):
        await queued  # redis-py's async pipeline queues the command when awaited
