"""The session manager's domain as one object: `SessionService` assembles the parts (sessions,
invoking, results, reading, reporting, quotas) from the ports and forwards each call of the
`SessionManagerPort` to the part whose job it is. It holds no logic of its own."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from serve_app.domain.capability import Capability
from serve_app.domain.catalog import Catalog
from serve_app.domain.invoking import InvokeCommand, Invoker
from serve_app.domain.models import Artifact, Invocation, LogLine, Principal, Session, utcnow
from serve_app.domain.observability import (
    AuditLog,
    AuditRecord,
    MetricsRecorder,
    MetricsSnapshot,
    Observer,
)
from serve_app.domain.ports import (
    ArtifactStore,
    Executor,
    InvocationStore,
    QuotaStore,
    SessionStore,
    WorkspaceManager,
)
from serve_app.domain.quotas import QuotaLimits, Quotas
from serve_app.domain.reading import InvocationReader
from serve_app.domain.reporting import Reporting
from serve_app.domain.results import InvokeOutcome, Results
from serve_app.domain.sessions import CreateSession, Sessions

# Where the HTTP layer and older callers import the messages of the port from.
__all__ = ["CreateSession", "InvokeCommand", "InvokeOutcome", "SessionService"]

NO_LIMITS = QuotaLimits()


class SessionService:
    def __init__(
        self,
        *,
        sessions: SessionStore,
        invocations: InvocationStore,
        artifacts: ArtifactStore,
        workspaces: WorkspaceManager,
        catalog: Catalog,
        executor: Executor,
        quotas: QuotaStore | None = None,
        limits: QuotaLimits = NO_LIMITS,
        observers: Sequence[Observer] = (),
        metrics: MetricsRecorder | None = None,
        audit: AuditLog | None = None,
        default_ttl_seconds: int = 3600,
        max_ttl_seconds: int = 7 * 86400,
        create_timeout_seconds: int = 900,
        invocation_lease_seconds: float = 30.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        quota = Quotas(quotas, limits)
        self._reporting = Reporting(
            sessions=sessions, observers=observers, metrics=metrics, audit=audit, clock=clock
        )
        self._sessions = Sessions(
            sessions=sessions,
            workspaces=workspaces,
            catalog=catalog,
            quotas=quota,
            reporting=self._reporting,
            default_ttl_seconds=default_ttl_seconds,
            max_ttl_seconds=max_ttl_seconds,
            claim_seconds=create_timeout_seconds,
            clock=clock,
        )
        self._results = Results(invocations=invocations, artifacts=artifacts, clock=clock)
        self._reader = InvocationReader(
            sessions=sessions, invocations=invocations, artifacts=artifacts
        )
        self._invoker = Invoker(
            sessions=self._sessions,
            invocations=invocations,
            catalog=catalog,
            executor=executor,
            quotas=quota,
            results=self._results,
            reader=self._reader,
            reporting=self._reporting,
            lease_seconds=invocation_lease_seconds,
            clock=clock,
        )

    # sessions -----------------------------------------------------------------------------------

    async def create_session(
        self, request: CreateSession, caller: Principal | None = None
    ) -> Session:
        return await self._sessions.create(request, caller)

    async def get_session(self, session_id: str, caller: Principal | None = None) -> Session:
        return await self._sessions.get(session_id, caller)

    async def close_session(self, session_id: str, caller: Principal | None = None) -> None:
        await self._sessions.close(session_id, caller)

    async def list_tools(
        self, session_id: str, caller: Principal | None = None
    ) -> list[Capability]:
        return await self._sessions.list_tools(session_id, caller)

    # invocations --------------------------------------------------------------------------------

    async def invoke(
        self,
        session_id: str,
        tool_name: str,
        command: InvokeCommand,
        caller: Principal | None = None,
    ) -> InvokeOutcome:
        return await self._invoker.invoke(session_id, tool_name, command, caller)

    async def get_invocation(
        self, invocation_id: str, caller: Principal | None = None
    ) -> Invocation:
        return await self._reader.get_invocation(invocation_id, caller)

    async def get_logs(
        self, invocation_id: str, caller: Principal | None = None
    ) -> list[LogLine] | None:
        return await self._reader.get_logs(invocation_id, caller)

    async def get_artifacts(
        self, invocation_id: str, caller: Principal | None = None
    ) -> list[Artifact] | None:
        return await self._reader.get_artifacts(invocation_id, caller)

    # observability ------------------------------------------------------------------------------

    async def metrics(self) -> MetricsSnapshot:
        """The application's metrics: shared counters when backed by Valkey."""
        return await self._reporting.metrics()

    async def audit_trail(
        self, session_id: str, caller: Principal | None = None, limit: int = 100
    ) -> list[AuditRecord]:
        session = await self._sessions.get(session_id, caller)
        return await self._reporting.audit_trail(session, limit)

    # sweeping and stopping ----------------------------------------------------------------------

    async def sweep_expired(self, batch: int = 100) -> int:
        """Remove expired sessions and their workspaces; returns how many were removed."""
        return await self._sessions.sweep_expired(batch)

    async def sweep_artifacts(self, batch: int = 1000) -> int:
        """Remove artifacts whose invocation records have expired; returns how many
        invocations' artifacts were removed."""
        return await self._results.sweep_artifacts(batch)

    async def sweep_abandoned(self, batch: int = 100) -> int:
        """End `failed` (unavailable, retryable) the invocations whose replica stopped renewing
        their lease before they ended; returns how many."""
        return await self._invoker.sweep_abandoned(batch)

    async def drain(self, timeout: float) -> int:
        """Before the replica stops: end or cancel what is still running (see `Invoker.drain`);
        returns how many invocations it ended."""
        return await self._invoker.drain(timeout)
