"""Reporting to the observers (metrics recorder, audit trail, audit log): each created session and
each terminal invocation, off the caller's path and never failing it; and reading back what they
recorded (the metrics snapshot, a session's audit records) once this replica's reports are in."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from serve_app.domain.models import Invocation, Session
from serve_app.domain.observability import (
    AuditLog,
    AuditRecord,
    MetricsRecorder,
    MetricsSnapshot,
    Observer,
)
from serve_app.domain.ports import SessionStore

log = logging.getLogger(__name__)

OBSERVER_TIMEOUT_SECONDS = 5.0


class Reporting:
    def __init__(
        self,
        *,
        sessions: SessionStore,
        observers: Sequence[Observer],
        metrics: MetricsRecorder | None,
        audit: AuditLog | None,
        clock: Callable[[], datetime],
    ) -> None:
        self._sessions = sessions
        self._observers = tuple(observers)
        self._metrics = metrics
        self._audit = audit
        self._clock = clock
        self._reporting: set[asyncio.Task[None]] = set()

    async def session_created(self, session: Session, elapsed: float) -> None:
        await asyncio.gather(
            *(_notify(observer.session_created(session, elapsed)) for observer in self._observers)
        )

    def invocation_finished(self, invocation: Invocation, session: Session) -> None:
        """Tell the observers (metrics, audit) after the answer, not before: the terminal record
        is already persisted, and their round trips stay off the caller's latency. Reads of
        metrics and audit wait for this replica's pending reports first."""
        if not self._observers:
            return

        async def report() -> None:
            await asyncio.gather(
                *(_notify(o.invocation_finished(invocation, session)) for o in self._observers)
            )

        task = asyncio.get_running_loop().create_task(report())
        self._reporting.add(task)
        task.add_done_callback(self._reporting.discard)

    async def reported(self, timeout: float = OBSERVER_TIMEOUT_SECONDS) -> None:
        """Wait (bounded) for this replica's pending reports."""
        if self._reporting:
            await asyncio.wait(set(self._reporting), timeout=timeout)

    async def metrics(self) -> MetricsSnapshot:
        """The application's metrics: shared counters when backed by Valkey."""
        await self.reported()
        snapshot = await self._metrics.snapshot() if self._metrics else MetricsSnapshot()
        snapshot.sessions_active = await self._sessions.count_active(self._clock())
        return snapshot

    async def audit_trail(self, session: Session, limit: int) -> list[AuditRecord]:
        await self.reported()
        records = await self._audit.read(session.id, limit) if self._audit else []
        # A session id can be used again after its session closed: the earlier session's records
        # (perhaps another tenant's) are not this one's.
        return [
            record
            for record in records
            if record.at >= session.created_at
            and (record.tenant_id, record.actor_id)
            == (session.principal.tenant_id, session.principal.actor_id)
        ]


async def _notify(event: Awaitable[None]) -> None:
    """Observers report; they never fail or block the call they observe for long."""
    try:
        await asyncio.wait_for(event, OBSERVER_TIMEOUT_SECONDS)
    except Exception:
        log.warning("an observer failed", exc_info=True)
