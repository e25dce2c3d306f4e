"""Quota counters: fixed-window rate counts and leased slots. The memory version serves one
process; the Valkey version is atomic across replicas (Lua scripts), and a slot held by a replica
that died frees itself when its lease runs out."""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from serve_app.adapters.valkey import guard


def _window(window_seconds: int, now: float) -> tuple[int, int]:
    start = int(now // window_seconds) * window_seconds
    return start, max(start + window_seconds - int(now), 1)


class MemoryQuotaStore:
    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, int]] = {}
        self._slots: dict[str, dict[str, float]] = {}

    async def hit(self, key: str, limit: int, window_seconds: int) -> int | None:
        start, retry_after = _window(window_seconds, time.time())
        window, count = self._counts.get(key, (start, 0))
        count = count + 1 if window == start else 1
        self._counts[key] = (start, count)
        if len(self._counts) > 100_000:
            self._counts = {k: v for k, v in self._counts.items() if v[0] == start}
        return retry_after if count > limit else None

    async def acquire(self, key: str, holder: str, limit: int, lease_seconds: float) -> bool:
        now = time.monotonic()
        slots = {h: until for h, until in self._slots.get(key, {}).items() if until > now}
        if len(slots) >= limit:
            self._slots[key] = slots
            return False
        slots[holder] = now + lease_seconds
        self._slots[key] = slots
        return True

    async def release(self, key: str, holder: str) -> None:
        slots = self._slots.get(key)
        if slots is not None:
            slots.pop(holder, None)
            if not slots:
                del self._slots[key]


_HIT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""

_ACQUIRE = """
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3]) * 1000) + 1000)
return 1
"""


class ValkeyQuotaStore:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self._hit = client.register_script(_HIT)
        self._acquire = client.register_script(_ACQUIRE)

    async def hit(self, key: str, limit: int, window_seconds: int) -> int | None:
        start, retry_after = _window(window_seconds, time.time())
        async with guard():
            count = await self._hit(
                keys=[f"{self._prefix}:rate:{key}:{start}"], args=[window_seconds + 5]
            )
        return retry_after if int(count) > limit else None

    async def acquire(self, key: str, holder: str, limit: int, lease_seconds: float) -> bool:
        async with guard():
            # Valkey's clock, not this replica's: every replica agrees on when a lease ends.
            seconds, micros = await self._client.time()
            now = seconds + micros / 1_000_000
            taken = await self._acquire(
                keys=[f"{self._prefix}:slots:{key}"], args=[now, limit, lease_seconds, holder]
            )
        return bool(taken)

    async def release(self, key: str, holder: str) -> None:
        async with guard():
            await self._client.zrem(f"{self._prefix}:slots:{key}", holder)
