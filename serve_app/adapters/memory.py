"""In-memory stores: the zero-infrastructure default. One process only; bounded by TTL and count."""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta

from serve_app.domain.models import Invocation, Session, utcnow


class MemorySessionStore:
    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        self._claims: dict[str, float] = {}

    async def claim(self, session_id: str, seconds: int) -> bool:
        now = time.monotonic()
        if self._claims.get(session_id, 0.0) > now:
            return False
        self._claims[session_id] = now + seconds
        return True

    async def release(self, session_id: str) -> None:
        self._claims.pop(session_id, None)

    async def put(self, session: Session) -> None:
        self._sessions[session.id] = session

    async def get(self, session_id: str) -> Session | None:
        return self._sessions.get(session_id)

    async def delete(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    async def expired(self, now: datetime, limit: int) -> list[Session]:
        found = [s for s in self._sessions.values() if s.expired(now)]
        return found[:limit]

    async def count_active(self, now: datetime) -> int:
        return sum(not s.expired(now) for s in self._sessions.values())


CorrelationKey = tuple[str, str, str]


class MemoryInvocationStore:
    """Invocations by id plus the correlation index; the oldest records go first past the caps
    (records and bytes). Like the Valkey store, output and logs over `inline_max_bytes` are kept
    only in their artifacts (`output_ref`/`logs_ref`), which the service reads back on demand."""

    def __init__(
        self,
        *,
        ttl_seconds: int = 86400,
        max_records: int = 100_000,
        max_bytes: int = 256 * 1024 * 1024,
        inline_max_bytes: int = 256 * 1024,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._records: OrderedDict[str, Invocation] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self._bytes = 0
        self._correlations: dict[CorrelationKey, str] = {}
        self._ttl = timedelta(seconds=ttl_seconds) if ttl_seconds > 0 else None
        self._max = max_records
        self._max_bytes = max_bytes
        self._inline_max = inline_max_bytes
        self._clock = clock
        self._leases: dict[str, datetime] = {}

    @staticmethod
    def _key(invocation: Invocation) -> CorrelationKey | None:
        if not invocation.correlation_id:
            return None
        return (invocation.correlation_key_scope, invocation.tool_name, invocation.correlation_id)

    async def create(
        self, invocation: Invocation, lease_until: datetime | None = None
    ) -> Invocation | None:
        self._prune()
        key = self._key(invocation)
        if key is not None:
            holder = self._correlations.get(key)
            if holder is not None and holder in self._records:
                return self._records[holder]
            self._correlations[key] = invocation.id
        self._keep(invocation)
        if lease_until is not None:
            self._leases[invocation.id] = lease_until
        return None

    async def update(self, invocation: Invocation) -> None:
        if invocation.terminal:
            self._leases.pop(invocation.id, None)
        if invocation.id in self._records:
            self._keep(invocation)
            self._prune()

    async def hold(self, invocation_id: str, until: datetime) -> None:
        if invocation_id in self._records:
            self._leases[invocation_id] = until

    async def abandoned(self, now: datetime, limit: int) -> list[str]:
        return [i for i, until in self._leases.items() if until < now][:limit]

    async def forget(self, invocation_id: str) -> None:
        self._leases.pop(invocation_id, None)

    def _keep(self, invocation: Invocation) -> None:
        kept = self._trimmed(invocation)
        size = len(kept.model_dump_json(exclude_none=True))
        self._bytes += size - self._sizes.get(kept.id, 0)
        self._sizes[kept.id] = size
        self._records[kept.id] = kept

    def _large(self, output: object) -> bool:
        return len(json.dumps(output, ensure_ascii=False)) > self._inline_max

    def _trimmed(self, invocation: Invocation) -> Invocation:
        drop: dict[str, None] = {}
        output = invocation.output
        if output is not None and invocation.output_ref and self._large(output):
            drop["output"] = None
        logs = invocation.logs
        if (
            logs
            and invocation.logs_ref
            and sum(len(line.message) for line in logs) > self._inline_max
        ):
            drop["logs"] = None
        return invocation.model_copy(update=drop) if drop else invocation

    async def get(self, invocation_id: str) -> Invocation | None:
        record = self._records.get(invocation_id)
        if record is not None and self._stale(record):
            return None
        return record

    async def find_by_correlation(
        self, scope: str, tool_name: str, correlation_id: str
    ) -> Invocation | None:
        holder = self._correlations.get((scope, tool_name, correlation_id))
        return await self.get(holder) if holder else None

    def _stale(self, record: Invocation) -> bool:
        return self._ttl is not None and record.started_at + self._ttl < self._clock()

    def _prune(self) -> None:
        while self._records:
            oldest_id, oldest = next(iter(self._records.items()))
            within = len(self._records) < self._max and self._bytes <= self._max_bytes
            if within and not self._stale(oldest):
                return
            if oldest_id == next(reversed(self._records)) and not self._stale(oldest):
                return  # the newest record stays, whatever its size
            del self._records[oldest_id]
            self._leases.pop(oldest_id, None)
            self._bytes -= self._sizes.pop(oldest_id, 0)
            key = self._key(oldest)
            if key is not None and self._correlations.get(key) == oldest_id:
                del self._correlations[key]


class ProcessLease:
    """The lease of a single process: always its own."""

    async def acquire(self, ttl_seconds: float) -> bool:
        return ttl_seconds > 0
