"""The interfaces the domain needs from the outside world; adapters implement them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from serve_app.domain.execution import ExecutionRequest, ExecutionResult
from serve_app.domain.models import Artifact, Invocation, Principal, Runtime, Session


class SessionStore(Protocol):
    async def claim(self, session_id: str, seconds: int) -> bool:
        """Reserve an id for a session being created (atomic: one caller wins, across replicas
        with Valkey); the reservation lapses after `seconds` should its creator die."""
        ...

    async def release(self, session_id: str) -> None:
        """End a reservation (the session is stored, or its creation failed)."""
        ...

    async def put(self, session: Session) -> None: ...

    async def get(self, session_id: str) -> Session | None: ...

    async def delete(self, session_id: str) -> None: ...

    async def expired(self, now: datetime, limit: int) -> list[Session]: ...

    async def count_active(self, now: datetime) -> int: ...


class InvocationStore(Protocol):
    async def create(
        self, invocation: Invocation, lease_until: datetime | None = None
    ) -> Invocation | None:
        """Store a new `running` invocation, claim its correlation key and take its lease (see
        `hold`), in one step.

        Returns the invocation that already holds the key (first writer wins) instead of
        storing, or None once stored.
        """
        ...

    async def update(self, invocation: Invocation) -> None: ...

    async def get(self, invocation_id: str) -> Invocation | None: ...

    async def hold(self, invocation_id: str, until: datetime) -> None:
        """Renew the lease of a `running` invocation: the replica running it is alive."""
        ...

    async def abandoned(self, now: datetime, limit: int) -> list[str]:
        """Running invocations whose lease ran out before they ended (their replica died)."""
        ...

    async def forget(self, invocation_id: str) -> None:
        """Drop a lease whose invocation has ended or is gone."""
        ...

    async def find_by_correlation(
        self, scope: str, tool_name: str, correlation_id: str
    ) -> Invocation | None:
        """The invocation holding a correlation id within a session incarnation (`scope`, see
        `Invocation.correlation_scope`)."""
        ...


class ArtifactStore(Protocol):
    async def put(
        self, invocation_id: str, name: str, content_type: str, data: bytes
    ) -> Artifact: ...

    async def read(self, invocation_id: str, artifact_id: str) -> bytes: ...

    async def list(self, invocation_id: str) -> list[Artifact]: ...

    async def sweep(self, now: datetime, limit: int) -> int:
        """Remove up to `limit` invocations' artifacts that outlived their invocation records;
        returns how many invocations' artifacts were removed."""
        ...


class WorkspaceManager(Protocol):
    async def create(
        self,
        session_id: str,
        principal: Principal,
        *,
        source_repo_path: str | None,
        repo_url: str | None,
        repo_ref: str | None,
        metadata: Mapping[str, str] | None = None,
    ) -> tuple[str, Runtime]:
        """Create the workspace: its path and runtime. `metadata` is the session's (a backend
        may read settings from it, e.g. the runner profile). On failure nothing of it is left
        behind."""
        ...

    async def remove(self, session: Session) -> None:
        """Remove the workspace; one already gone is not an error."""
        ...


class Executor(Protocol):
    async def execute(self, request: ExecutionRequest) -> ExecutionResult: ...


class Lease(Protocol):
    async def acquire(self, ttl_seconds: float) -> bool:
        """Take or renew the lease; False while another holder has it."""
        ...


class QuotaStore(Protocol):
    """Counters behind the quotas; cluster-wide when backed by Valkey."""

    async def hit(self, key: str, limit: int, window_seconds: int) -> int | None:
        """Count one attempt in the current fixed window; over `limit`, the seconds until the
        window ends (the attempt still counts), else None."""
        ...

    async def acquire(self, key: str, holder: str, limit: int, lease_seconds: float) -> bool:
        """Take one of `limit` slots for `holder`; a slot whose lease ran out is free again."""
        ...

    async def release(self, key: str, holder: str) -> None: ...
