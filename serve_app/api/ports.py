"""What the HTTP layer needs from the session manager (in-process or behind a Serve handle)."""

from __future__ import annotations

from typing import Protocol

from serve_app.domain.capability import Capability
from serve_app.domain.invoking import InvokeCommand
from serve_app.domain.models import Artifact, Invocation, LogLine, Principal, Session
from serve_app.domain.observability import AuditRecord, MetricsSnapshot
from serve_app.domain.results import InvokeOutcome
from serve_app.domain.sessions import CreateSession


class SessionManagerPort(Protocol):
    async def create_session(
        self, request: CreateSession, caller: Principal | None = None
    ) -> Session: ...

    async def get_session(self, session_id: str, caller: Principal | None = None) -> Session: ...

    async def close_session(self, session_id: str, caller: Principal | None = None) -> None: ...

    async def list_tools(
        self, session_id: str, caller: Principal | None = None
    ) -> list[Capability]: ...

    async def invoke(
        self,
        session_id: str,
        tool_name: str,
        command: InvokeCommand,
        caller: Principal | None = None,
    ) -> InvokeOutcome: ...

    async def get_invocation(
        self, invocation_id: str, caller: Principal | None = None
    ) -> Invocation: ...

    async def get_logs(
        self, invocation_id: str, caller: Principal | None = None
    ) -> list[LogLine] | None: ...

    async def metrics(self) -> MetricsSnapshot: ...

    async def audit_trail(
        self, session_id: str, caller: Principal | None = None, limit: int = 100
    ) -> list[AuditRecord]: ...

    async def get_artifacts(
        self, invocation_id: str, caller: Principal | None = None
    ) -> list[Artifact] | None: ...
