"""Metrics and audit adapters: in memory for one process, in Valkey for the whole application
(shared by every replica, surviving restarts), and the audit log line."""

from __future__ import annotations

import logging
from collections import defaultdict, deque

import redis.asyncio as aioredis

from serve_app.adapters.valkey import guard
from serve_app.domain.models import Invocation, InvocationStatus, Session
from serve_app.domain.observability import (
    DURATION_BUCKETS,
    SESSION_CREATE_BUCKETS,
    AuditRecord,
    HistogramSnapshot,
    MetricsSnapshot,
    bucket_index,
    denial_reason,
)

audit_logger = logging.getLogger("workspace.audit")
SEPARATOR = "\x1f"


def _labels(invocation: Invocation) -> tuple[str, str, str | None]:
    tool = invocation.tool_name.lower()
    status = invocation.status.value
    reason = None
    if invocation.status is InvocationStatus.DENIED:
        reason = denial_reason(invocation.error.message if invocation.error else "")
    return tool, status, reason


class MemoryMetrics:
    def __init__(self) -> None:
        self._invocations: dict[tuple[str, str], int] = defaultdict(int)
        self._denied: dict[tuple[str, str], int] = defaultdict(int)
        self._durations: dict[str, HistogramSnapshot] = {}
        self._create = HistogramSnapshot(buckets=[0] * (len(SESSION_CREATE_BUCKETS) + 1))
        self._pod_deletions: dict[str, int] = defaultdict(int)

    async def invocation_finished(self, invocation: Invocation, session: Session) -> None:
        tool, status, reason = _labels(invocation)
        self._invocations[(tool, status)] += 1
        if reason is not None:
            self._denied[(tool, reason)] += 1
        histogram = self._durations.setdefault(
            tool, HistogramSnapshot(buckets=[0] * (len(DURATION_BUCKETS) + 1))
        )
        seconds = invocation.duration_ms / 1000
        histogram.buckets[bucket_index(DURATION_BUCKETS, seconds)] += 1
        histogram.sum += seconds
        histogram.count += 1

    async def session_created(self, session: Session, seconds: float) -> None:
        self._create.buckets[bucket_index(SESSION_CREATE_BUCKETS, seconds)] += 1
        self._create.sum += seconds
        self._create.count += 1

    async def pod_deleted(self, reason: str) -> None:
        """A pod the kubernetes backend's janitor deleted."""
        self._pod_deletions[reason] += 1

    async def snapshot(self) -> MetricsSnapshot:
        return MetricsSnapshot(
            invocations=dict(self._invocations),
            denied=dict(self._denied),
            durations={k: v.model_copy(deep=True) for k, v in self._durations.items()},
            session_create=self._create.model_copy(deep=True),
            pod_deletions=dict(self._pod_deletions),
        )


class ValkeyMetrics:
    """Hashes of counters under `<prefix>:…`, one transaction per observation."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._client = client
        self._invocations = f"{prefix}:invocations"
        self._denied = f"{prefix}:denied"
        self._durations = f"{prefix}:duration"
        self._create = f"{prefix}:session_create"
        self._pod_deletions = f"{prefix}:k8s_pod_deletions"

    async def invocation_finished(self, invocation: Invocation, session: Session) -> None:
        tool, status, reason = _labels(invocation)
        seconds = invocation.duration_ms / 1000
        bucket = bucket_index(DURATION_BUCKETS, seconds)
        async with guard(), self._client.pipeline(transaction=True) as pipe:
            pipe.hincrby(self._invocations, f"{tool}{SEPARATOR}{status}", 1)
            if reason is not None:
                pipe.hincrby(self._denied, f"{tool}{SEPARATOR}{reason}", 1)
            pipe.hincrby(self._durations, f"{tool}{SEPARATOR}b{bucket}", 1)
            pipe.hincrby(self._durations, f"{tool}{SEPARATOR}count", 1)
            pipe.hincrbyfloat(self._durations, f"{tool}{SEPARATOR}sum", seconds)
            await pipe.execute()

    async def session_created(self, session: Session, seconds: float) -> None:
        bucket = bucket_index(SESSION_CREATE_BUCKETS, seconds)
        async with guard(), self._client.pipeline(transaction=True) as pipe:
            pipe.hincrby(self._create, f"b{bucket}", 1)
            pipe.hincrby(self._create, "count", 1)
            pipe.hincrbyfloat(self._create, "sum", seconds)
            await pipe.execute()

    async def pod_deleted(self, reason: str) -> None:
        """A pod the kubernetes backend's janitor deleted."""
        async with guard():
            await self._client.hincrby(self._pod_deletions, reason, 1)

    async def snapshot(self) -> MetricsSnapshot:
        async with guard(), self._client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self._invocations)
            pipe.hgetall(self._denied)
            pipe.hgetall(self._durations)
            pipe.hgetall(self._create)
            pipe.hgetall(self._pod_deletions)
            invocations, denied, durations, create, deletions = await pipe.execute()
        snapshot = MetricsSnapshot(
            invocations=_pairs(invocations),
            denied=_pairs(denied),
            session_create=_histogram(
                {k.decode(): v for k, v in create.items()}, SESSION_CREATE_BUCKETS
            ),
            pod_deletions={k.decode(): int(v) for k, v in deletions.items()},
        )
        per_tool: dict[str, dict[str, bytes]] = defaultdict(dict)
        for field, value in durations.items():
            tool, _, name = field.decode().partition(SEPARATOR)
            per_tool[tool][name] = value
        snapshot.durations = {
            tool: _histogram(fields, DURATION_BUCKETS) for tool, fields in per_tool.items()
        }
        return snapshot


def _pairs(raw: dict[bytes, bytes]) -> dict[tuple[str, str], int]:
    pairs: dict[tuple[str, str], int] = {}
    for field, value in raw.items():
        first, _, second = field.decode().partition(SEPARATOR)
        pairs[(first, second)] = int(value)
    return pairs


def _histogram(fields: dict[str, bytes], bounds: tuple[float, ...]) -> HistogramSnapshot:
    return HistogramSnapshot(
        buckets=[int(fields.get(f"b{i}", 0)) for i in range(len(bounds) + 1)],
        sum=float(fields.get("sum", 0)),
        count=int(fields.get("count", 0)),
    )


class LogAudit:
    """The audit line on the service log (always on)."""

    async def invocation_finished(self, invocation: Invocation, session: Session) -> None:
        record = AuditRecord.of(invocation, session)
        audit_logger.info(record.event, extra={"audit": record.model_dump(mode="json")})

    async def session_created(self, session: Session, seconds: float) -> None:
        return None


class MemoryAudit:
    def __init__(self, per_session: int = 1000, sessions: int = 10_000) -> None:
        self._records: dict[str, deque[AuditRecord]] = {}
        self._per_session = per_session
        self._sessions = sessions

    async def invocation_finished(self, invocation: Invocation, session: Session) -> None:
        if session.id not in self._records and len(self._records) >= self._sessions:
            self._records.pop(next(iter(self._records)))
        trail = self._records.setdefault(session.id, deque(maxlen=self._per_session))
        trail.append(AuditRecord.of(invocation, session))

    async def session_created(self, session: Session, seconds: float) -> None:
        return None

    async def read(self, session_id: str, limit: int) -> list[AuditRecord]:
        return list(self._records.get(session_id, ()))[-limit:]


class ValkeyAudit:
    """A capped stream per session (`<prefix>:<session>`), expiring with the invocation TTL."""

    def __init__(
        self, client: aioredis.Redis, prefix: str, *, max_length: int, ttl_seconds: int
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._max = max_length
        self._ttl = ttl_seconds

    async def invocation_finished(self, invocation: Invocation, session: Session) -> None:
        record = AuditRecord.of(invocation, session).model_dump_json()
        key = f"{self._prefix}:{session.id}"
        async with guard(), self._client.pipeline(transaction=True) as pipe:
            pipe.xadd(key, {"record": record}, maxlen=self._max, approximate=True)
            if self._ttl:
                pipe.expire(key, self._ttl)
            await pipe.execute()

    async def session_created(self, session: Session, seconds: float) -> None:
        return None

    async def read(self, session_id: str, limit: int) -> list[AuditRecord]:
        async with guard():
            entries = await self._client.xrevrange(f"{self._prefix}:{session_id}", count=limit)
        records: list[AuditRecord] = []
        for _entry_id, fields in entries or []:
            if fields and b"record" in fields:
                records.append(AuditRecord.model_validate_json(fields[b"record"]))
        return list(reversed(records))
