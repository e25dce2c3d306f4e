"""Valkey-backed stores (contract §8 key layout). One connection pool per replica; every state
change is one atomic command, transaction or script; connection trouble is `unavailable` (503)
within a bounded time, and the pool reconnects by itself once Valkey is back."""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from serve_app.domain.errors import ErrorCode, ServiceError
from serve_app.domain.models import Invocation, Session

T = TypeVar("T")


def connect(
    host: str, port: int, *, db: int, password: str | None, timeout_seconds: float
) -> aioredis.Redis:
    return aioredis.Redis(
        host=host,
        port=port,
        db=db,
        password=password or None,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=30,
        max_connections=512,
        decode_responses=False,
    )


@asynccontextmanager
async def guard() -> AsyncIterator[None]:
    try:
        yield
    except (RedisError, OSError) as exc:
        raise ServiceError(
            ErrorCode.UNAVAILABLE, f"state store unavailable: {type(exc).__name__}", True
        ) from exc


async def _call(operation: Callable[[], Awaitable[T]]) -> T:
    async with guard():
        return await operation()


async def ping(client: aioredis.Redis, address: str) -> None:
    """Fail with a message naming the address when Valkey does not answer."""
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        raise RuntimeError(f"cannot reach Valkey at {address}: {exc}") from exc


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _ttl_ms(until: datetime) -> int:
    # Rounded up: a key must not vanish before `until`, or the sweeper (which goes by
    # `until`) could find its session gone but not yet expired.
    return max(math.ceil((until.timestamp() - time.time()) * 1000), 1000)


class ValkeySessionStore:
    """`<prefix>:<id>` → session JSON with TTL at `expires_at`; `<prefix>:expiry` (sorted set by
    expiry) and `<prefix>:refs` (id → JSON) let the sweeper find sessions whose key is gone."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self._expiry = f"{prefix}:expiry"
        self._refs = f"{prefix}:refs"

    def _key(self, session_id: str) -> str:
        return f"{self._prefix}:{session_id}"

    def _claim_key(self, session_id: str) -> str:
        return f"{self._prefix}:claim:{session_id}"

    async def claim(self, session_id: str, seconds: int) -> bool:
        claimed = await _call(
            lambda: self._client.set(self._claim_key(session_id), "1", nx=True, ex=seconds)
        )
        return bool(claimed)

    async def release(self, session_id: str) -> None:
        await _call(lambda: self._client.delete(self._claim_key(session_id)))

    async def put(self, session: Session) -> None:
        payload = session.model_dump_json()
        async with guard(), self._client.pipeline(transaction=True) as pipe:
            pipe.set(self._key(session.id), payload, px=_ttl_ms(session.expires_at))
            pipe.zadd(self._expiry, {session.id: session.expires_at.timestamp()})
            pipe.hset(self._refs, session.id, payload)
            await pipe.execute()

    async def get(self, session_id: str) -> Session | None:
        raw = await _call(lambda: self._client.get(self._key(session_id)))
        return Session.model_validate_json(raw) if raw else None

    async def delete(self, session_id: str) -> None:
        async with guard(), self._client.pipeline(transaction=True) as pipe:
            pipe.delete(self._key(session_id))
            pipe.zrem(self._expiry, session_id)
            pipe.hdel(self._refs, session_id)
            await pipe.execute()

    async def count_active(self, now: datetime) -> int:
        count = await _call(lambda: self._client.zcount(self._expiry, now.timestamp(), "+inf"))
        return int(count)

    async def expired(self, now: datetime, limit: int) -> list[Session]:
        found = await _call(
            lambda: self._client.zrangebyscore(self._expiry, "-inf", now.timestamp(), 0, limit)
        )
        ids = [_text(item) for item in found]
        if not ids:
            return []
        rows = await _call(lambda: self._client.hmget(self._refs, ids))
        sessions = [Session.model_validate_json(row) for row in rows if row]
        orphans = [i for i, row in zip(ids, rows, strict=True) if not row]
        if orphans:
            await _call(lambda: self._client.zrem(self._expiry, *orphans))
        return sessions


# Claims the correlation key, stores the record and takes its lease in one step: first writer wins.
_CREATE = """
if KEYS[2] ~= '' then
  local holder = redis.call('GET', KEYS[2])
  if holder then return holder end
  if tonumber(ARGV[3]) > 0 then
    redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
  else
    redis.call('SET', KEYS[2], ARGV[1])
  end
end
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
if ARGV[4] ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
end
return false
"""


class ValkeyInvocationStore:
    """`<prefix>:<id>` → invocation JSON; `<prefix>:corr:<scope>:<tool>:<correlation>` → id,
    where the scope is the session incarnation (`Invocation.correlation_scope`).

    Output and logs stay inline up to `inline_max_bytes` each; larger ones are left to their
    artifacts (`output_ref`/`logs_ref`), which the service reads back on demand.
    """

    def __init__(
        self, client: aioredis.Redis, prefix: str, *, ttl_seconds: int, inline_max_bytes: int
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl_ms = ttl_seconds * 1000
        self._inline_max = inline_max_bytes
        self._create = client.register_script(_CREATE)
        # Running invocations by lease expiry: a replica renews its own while they run.
        self._running = f"{prefix}:running"

    def _key(self, invocation_id: str) -> str:
        return f"{self._prefix}:{invocation_id}"

    def _corr_key(self, scope: str, tool_name: str, correlation_id: str) -> str:
        parts = (quote(part, safe="") for part in (scope, tool_name, correlation_id))
        return f"{self._prefix}:corr:" + ":".join(parts)

    def _envelope(self, invocation: Invocation) -> str:
        record: dict[str, Any] = invocation.model_dump(mode="json", exclude_none=True)
        if invocation.owner is not None:
            record["owner"] = invocation.owner.model_dump(mode="json")
        for field, ref in (("output", "output_ref"), ("logs", "logs_ref")):
            if field in record and record.get(ref):
                size = len(json.dumps(record[field], ensure_ascii=False).encode())
                if size > self._inline_max:
                    del record[field]
        return json.dumps(record, ensure_ascii=False)

    async def create(
        self, invocation: Invocation, lease_until: datetime | None = None
    ) -> Invocation | None:
        corr = (
            self._corr_key(
                invocation.correlation_key_scope, invocation.tool_name, invocation.correlation_id
            )
            if invocation.correlation_id
            else ""
        )
        holder = await _call(
            lambda: self._create(
                keys=[self._key(invocation.id), corr, self._running],
                args=[
                    invocation.id,
                    self._envelope(invocation),
                    self._ttl_ms,
                    "" if lease_until is None else repr(lease_until.timestamp()),
                ],
            )
        )
        if not holder:
            return None
        previous = await self.get(_text(holder))
        return previous or invocation

    async def update(self, invocation: Invocation) -> None:
        payload = self._envelope(invocation)
        px = self._ttl_ms or None
        async with guard(), self._client.pipeline(transaction=True) as pipe:
            pipe.set(self._key(invocation.id), payload, px=px)
            if invocation.terminal:
                pipe.zrem(self._running, invocation.id)
            await pipe.execute()

    async def hold(self, invocation_id: str, until: datetime) -> None:
        await _call(lambda: self._client.zadd(self._running, {invocation_id: until.timestamp()}))

    async def abandoned(self, now: datetime, limit: int) -> list[str]:
        found = await _call(
            lambda: self._client.zrangebyscore(self._running, "-inf", now.timestamp(), 0, limit)
        )
        return [_text(item) for item in found]

    async def forget(self, invocation_id: str) -> None:
        await _call(lambda: self._client.zrem(self._running, invocation_id))

    async def get(self, invocation_id: str) -> Invocation | None:
        raw = await _call(lambda: self._client.get(self._key(invocation_id)))
        return Invocation.model_validate_json(raw) if raw else None

    async def find_by_correlation(
        self, scope: str, tool_name: str, correlation_id: str
    ) -> Invocation | None:
        holder = await _call(
            lambda: self._client.get(self._corr_key(scope, tool_name, correlation_id))
        )
        return await self.get(_text(holder)) if holder else None


class ValkeyLease:
    """A named lease (SET NX PX) so that one replica at a time runs a periodic job."""

    def __init__(self, client: aioredis.Redis, key: str, holder: str) -> None:
        self._client = client
        self._key = key
        self._holder = holder.encode()

    async def acquire(self, ttl_seconds: float) -> bool:
        ttl_ms = int(ttl_seconds * 1000)
        async with guard():
            if await self._client.set(self._key, self._holder, nx=True, px=ttl_ms):
                return True
            if await self._client.get(self._key) == self._holder:
                await self._client.pexpire(self._key, ttl_ms)
                return True
            return False
