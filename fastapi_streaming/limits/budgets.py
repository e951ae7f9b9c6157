"""Units of a plan reserved in Redis ahead of need, so a publish does not wait for Redis.

An HTTP/1.1 publisher waits for each 202 before it sends its next publish, and on a server
busy writing to a thousand clients each turn of the event loop takes milliseconds: the turns
a publish waits for its charge's round trip to Redis set the pace of every publisher. So each
worker reserves a block of each principal's publish rate and quota ahead of need, spends it
without waiting, and reserves the next block in the background when less than half is left
(the budgets that run low in one turn together, in one script call); only a publish that
finds its budget empty is charged as before (and waits).

What a block may be, so that no principal is ever admitted beyond its plan:

- **Quota (fixed window)**: ``INCRBY`` of the block on the window's counter, never past the
  limit (:data:`RESERVE`). Units belong to the window they were reserved in and are spent only
  before it ends (as seen from the time the reservation was sent, which is never later than
  Redis's); units left when the budget goes idle or the worker stops are given back with
  ``DECRBY``, only if the window is still the same (:data:`GIVE_BACK`).
- **Publish rate (moving window)**: a block of window entries stamped ``hold`` seconds (a
  tenth of the window) in the future, spent only until then. Every unit is spent no later than
  its stamp, and each reservation checked that its window held room for it: no window of the
  rate's length ever holds more spent publishes than the rate. Stamps never go backwards
  (a reservation stamps at least what the newest entry holds), so the list stays ordered as
  the check reads it. The price: a reserved entry counts for up to ``hold`` seconds longer.

A block grows with the principal's observed publish rate (half a second of it, and for a rate
half its ``hold``), never above a fiftieth of the limit; limits under a hundred get no budget
and every charge is exact (``"5/minute"`` refuses the sixth publish on any worker). Other
workers' unspent units are what make a principal refused early: by at most
``(workers - 1) x block``. See docs/decisions.md for the alternatives measured.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .batch import registered
from .timeouts import bounded

logger = logging.getLogger("fastapi_streaming.limits")

#: A block is at most this fraction of its limit: what one worker may hold back from others.
FRACTION = 50
#: Seconds of the principal's observed publishing a block is sized for.
LEAD = 0.5
#: Rate entries are stamped this fraction of the rate's window ahead, and spent until then.
HOLD = 0.1
#: Seconds without reservations after one found its counter full (at most the rate's hold).
RETRY = 1.0
#: Seconds a budget may go unused before its quota units are given back and it is forgotten.
IDLE = 10.0

#: For each budget ``i`` (the budgets of one moment go together): reserve up to ``want`` entries
#: of a moving window (``KEYS[2i-1]``), stamped ``hold`` seconds after ``ARGV[1]`` (the time),
#: and up to ``qwant`` units of a fixed window (``KEYS[2i]``); ``ARGV`` holds each budget's
#: rate limit, rate window, want, hold, quota limit, quota window and qwant in turn. Returns,
#: for each, the entries granted, the units granted, the quota window's milliseconds to live
#: and its end (Redis's clock, milliseconds).
RESERVE = """
local now = tonumber(ARGV[1])
local clock = redis.call("time")
local millis = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local answers = {}
for i = 1, #KEYS / 2 do
    local rate, quota = KEYS[2 * i - 1], KEYS[2 * i]
    local at = 7 * i - 5
    local limit, window = tonumber(ARGV[at]), tonumber(ARGV[at + 1])
    local want, hold = tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
    local function fits(amount)
        if amount == 0 then return true end
        local entry = redis.call("lindex", rate, limit - amount)
        return (not entry) or tonumber(entry) < now - window
    end
    local low, high = 0, math.min(want, limit)
    while low < high do
        local mid = math.ceil((low + high) / 2)
        if fits(mid) then low = mid else high = mid - 1 end
    end
    if low > 0 then
        local stamp = now + hold
        local newest = tonumber(redis.call("lindex", rate, 0))
        if newest and newest > stamp then stamp = newest end
        local entries = {}
        for j = 1, low do entries[j] = stamp end
        for j = 1, low, 5000 do
            redis.call("lpush", rate, unpack(entries, j, math.min(j + 4999, low)))
        end
        redis.call("ltrim", rate, 0, limit - 1)
        redis.call("expire", rate, math.ceil(stamp - now + window))
    end
    local qlimit, qwindow = tonumber(ARGV[at + 4]), tonumber(ARGV[at + 5])
    local qwant = tonumber(ARGV[at + 6])
    local current = tonumber(redis.call("get", quota) or "0")
    local granted = math.max(0, math.min(qwant, qlimit - current))
    if granted > 0 then
        local total = redis.call("incrby", quota, granted)
        if tonumber(total) == granted then
            redis.call("expire", quota, qwindow)
        end
    end
    local ttl = redis.call("pttl", quota)
    answers[4 * i - 3], answers[4 * i - 2] = low, granted
    answers[4 * i - 1], answers[4 * i] = ttl, millis + ttl
end
return answers
"""

#: Budgets per reservation script call (Redis runs a script alone: keep each call short).
CHUNK = 200

#: Give ``ARGV[1]`` units back to the fixed window ``KEYS[1]`` if it is still the window that
#: ends at ``ARGV[2]`` (Redis's clock, ms; within half the window ``ARGV[3]`` ms): a later
#: window's counter is left alone.
GIVE_BACK = """
local ttl = redis.call("pttl", KEYS[1])
if ttl <= 0 then return 0 end
local clock = redis.call("time")
local ends = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000) + ttl
if math.abs(ends - tonumber(ARGV[2])) * 2 >= tonumber(ARGV[3]) then return 0 end
local left = redis.call("decrby", KEYS[1], ARGV[1])
if tonumber(left) < 0 then redis.call("set", KEYS[1], 0, "KEEPTTL") end
return 1
"""


def cap(item: Any) -> int:
    """The largest block of ``item``'s limit a worker may hold (0: charge it exactly)."""
    largest = int(item.amount) // FRACTION
    return largest if largest >= 2 else 0


class Units:
    """Units of one counter this worker holds, in blocks each spendable until a moment."""

    __slots__ = ("blocks",)

    def __init__(self) -> None:
        self.blocks: deque[list[float]] = deque()

    def held(self, now: float) -> int:
        while self.blocks and (self.blocks[0][1] <= now or self.blocks[0][0] <= 0):
            self.blocks.popleft()
        return int(sum(count for count, _ in self.blocks))

    def take(self, amount: int) -> None:
        """Spend ``amount`` (there are that many: :meth:`held` said so this same moment)."""
        while amount:
            block = self.blocks[0]
            spent = min(amount, int(block[0]))
            block[0] -= spent
            amount -= spent
            if block[0] <= 0:
                self.blocks.popleft()

    def add(self, count: int, until: float) -> None:
        if count > 0:
            # Blocks are spent oldest first and dropped once the oldest's end passes. Rate
            # blocks end in the order they were reserved; quota blocks of one window end at
            # estimates that are each no later than the window's true end, so while the
            # oldest's has not passed, none of them has truly ended.
            self.blocks.append([float(count), until])


@dataclass
class Budget:
    """What this worker holds of one principal's publish rate and quota."""

    rate_key: str
    quota_key: str
    rate: Any
    quota: Any
    largest: int
    hold: float
    block: int = 1
    rate_units: Units = field(default_factory=Units)
    quota_units: Units = field(default_factory=Units)
    #: The quota window the units are of: its end on Redis's clock (ms), for giving back.
    window_end: float = 0.0
    refilling: bool = False
    spent: int = 0
    asked_at: float = field(default_factory=time.monotonic)
    #: No reservation before this moment (monotonic): the last one found a counter full.
    resume_at: float = 0.0
    used_at: float = field(default_factory=time.monotonic)

    def resize(self, now: float) -> None:
        """Size the next block for the publishing seen since the last reservation."""
        elapsed = max(now - self.asked_at, 1e-3)
        lead = min(LEAD, self.hold / 2)
        wanted = math.ceil(self.spent / elapsed * lead)
        self.block = max(1, min(wanted, 2 * self.block + 1, self.largest))
        self.spent = 0
        self.asked_at = now


class Budgets:
    """Every principal's budget on this worker, reserved through one redis-py client."""

    def __init__(self, bridge: Any) -> None:
        self.bridge = bridge
        self._budgets: dict[Any, Budget] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiting: list[Budget] = []
        client = bridge.get_connection()
        self._reserve = registered(client, RESERVE)
        self._give_back = registered(client, GIVE_BACK)
        #: Reservation script calls (each a round trip in the background), for tests.
        self.reservations = 0

    def budget(
        self, meter: Any, rate_ids: tuple[str, ...], quota_ids: tuple[str, ...]
    ) -> Budget | None:
        """The meter's budget; None when its limits are too small to reserve ahead."""
        found = self._budgets.get(meter)
        if found is None:
            plan = meter.plan
            rate, quota = plan.publish_item, plan.quota_item
            largest = min(cap(rate), cap(quota))
            if not largest:
                return None
            prefixed = self.bridge.prefixed_key
            found = self._budgets[meter] = Budget(
                prefixed(rate.key_for(*rate_ids)),
                prefixed(quota.key_for(*quota_ids)),
                rate,
                quota,
                largest,
                hold=HOLD * rate.get_expiry(),
            )
        return found

    def spend(self, budget: Budget, cost: int) -> bool:
        """Spend one rate entry and ``cost`` quota units held here, without waiting; reserve
        more in the background when less than half a block is left. False: not enough held
        (charge exactly; a reservation starts)."""
        now = time.time()
        rate_held, quota_held = budget.rate_units.held(now), budget.quota_units.held(now)
        budget.used_at = time.monotonic()
        enough = rate_held >= 1 and quota_held >= cost
        budget.spent += 1  # publishing seen, whether paid from here or charged exactly
        if enough:
            budget.rate_units.take(1)
            budget.quota_units.take(cost)
            rate_held, quota_held = rate_held - 1, quota_held - cost
        low = 2 * min(rate_held, quota_held) < budget.block
        if low and not budget.refilling and budget.used_at >= budget.resume_at:
            budget.refilling = True
            self._waiting.append(budget)
            if len(self._waiting) == 1:
                # Its first step comes after every callback already due: the budgets that
                # run low in this turn are reserved in the same script call.
                task = asyncio.create_task(self._reserve_all(), name="fastapi-streaming budgets")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        return enough

    async def _reserve_all(self) -> None:
        batch, self._waiting = self._waiting, []
        for start in range(0, len(batch), CHUNK):
            await self._reserve_some(batch[start : start + CHUNK])

    async def _reserve_some(self, batch: list[Budget]) -> None:
        now = time.time()
        keys: list[str] = []
        args: list[float] = [now]
        asked: list[tuple[Budget, int, int]] = []
        for budget in batch:
            budget.resize(time.monotonic())
            want_rate = max(0, budget.block - budget.rate_units.held(now))
            want_quota = max(0, budget.block - budget.quota_units.held(now))
            if not want_rate and not want_quota:
                budget.refilling = False
                continue
            rate, quota = budget.rate, budget.quota
            keys += (budget.rate_key, budget.quota_key)
            args += (rate.amount, rate.get_expiry(), want_rate, budget.hold)
            args += (quota.amount, quota.get_expiry(), want_quota)
            asked.append((budget, want_rate, want_quota))
        if not asked:
            return
        self.reservations += 1
        try:
            answers = await bounded(self._reserve(keys=keys, args=args))
        except Exception:
            # Publishes go on being charged one by one (and let through if Redis is down).
            logger.warning("Limits storage unreachable; no budget reserved", exc_info=True)
            answers = None
        for index, (budget, want_rate, want_quota) in enumerate(asked):
            budget.refilling = False
            if answers is None:
                continue
            entries, units, ttl, ends = (int(value) for value in answers[4 * index : 4 * index + 4])
            # Both ends as seen from when the reservation was sent: never after Redis's.
            budget.rate_units.add(entries, now + budget.hold)
            if units > 0 and ttl > 0:
                budget.quota_units.add(units, now + ttl / 1000)
                budget.window_end = float(ends)
            if (want_rate and not entries) or (want_quota and not units):
                # A full counter: publishes are charged exactly (and refused) for a while,
                # instead of each also asking for a block that cannot be had.
                budget.resume_at = time.monotonic() + min(RETRY, budget.hold)

    async def sweep(self, *, idle: float = IDLE) -> None:
        """Give back the quota units of budgets unused for ``idle`` seconds, and forget them
        (all of them when ``idle`` is 0: the worker stops)."""
        now = time.monotonic()
        for meter, budget in list(self._budgets.items()):
            if now - budget.used_at >= idle and not budget.refilling:
                del self._budgets[meter]
                await self._return(budget)

    async def _return(self, budget: Budget) -> None:
        units = budget.quota_units.held(time.time())
        if units <= 0:
            return
        budget.quota_units.blocks.clear()
        window = budget.quota.get_expiry() * 1000
        try:
            await bounded(
                self._give_back(keys=[budget.quota_key], args=(units, budget.window_end, window))
            )
        except Exception:
            logger.warning("Limits storage unreachable; %d reserved units kept", units)

    async def stop(self) -> None:
        """Give back every unit held. Reservations under way are awaited, not cancelled: one
        cancelled after Redis ran it would keep its units out of the quota."""
        await self.settled()
        await self.sweep(idle=0)

    async def settled(self) -> None:
        """Wait for the reservations under way to be answered (or to fail)."""
        await asyncio.gather(*self._tasks, return_exceptions=True)
