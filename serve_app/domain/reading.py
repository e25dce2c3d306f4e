"""The read side of invocations: a stored record for its owner, hydrated from its artifacts where
the record keeps only a reference (output, logs, the artifact list)."""

from __future__ import annotations

import json

from serve_app.domain.errors import ErrorCode, ServiceError, not_found
from serve_app.domain.models import Artifact, Invocation, LogLine, Principal
from serve_app.domain.ports import ArtifactStore, InvocationStore, SessionStore
from serve_app.domain.sessions import authorize


class InvocationReader:
    def __init__(
        self,
        *,
        sessions: SessionStore,
        invocations: InvocationStore,
        artifacts: ArtifactStore,
    ) -> None:
        self._sessions = sessions
        self._invocations = invocations
        self._artifacts = artifacts

    async def _owned_invocation(self, invocation_id: str, caller: Principal | None) -> Invocation:
        invocation = await self._invocations.get(invocation_id)
        if invocation is None:
            raise not_found("invocation not found")
        if caller is not None:
            owner = invocation.owner
            if owner is None:
                session = await self._sessions.get(invocation.session_id)
                owner = session.principal if session is not None else None
            if owner is None:
                raise not_found("invocation not found")
            authorize(owner, caller)
        return invocation

    async def get_invocation(
        self, invocation_id: str, caller: Principal | None = None
    ) -> Invocation:
        return await self.hydrate(await self._owned_invocation(invocation_id, caller))

    async def hydrate(self, invocation: Invocation) -> Invocation:
        """Fill `output` from its artifact where the stored record keeps only `output_ref`."""
        if invocation.output is not None or not invocation.output_ref:
            return invocation
        try:
            data = await self._artifacts.read(invocation.id, invocation.output_ref)
            return invocation.model_copy(update={"output": json.loads(data)})
        except (OSError, ValueError) as exc:
            raise ServiceError(ErrorCode.INTERNAL, "invocation output is unreadable") from exc

    async def get_logs(
        self, invocation_id: str, caller: Principal | None = None
    ) -> list[LogLine] | None:
        invocation = await self._owned_invocation(invocation_id, caller)
        if invocation.logs or not invocation.logs_ref:
            return invocation.logs or None
        try:
            data = await self._artifacts.read(invocation.id, invocation.logs_ref)
            lines = [LogLine.model_validate_json(row) for row in data.splitlines() if row.strip()]
        except (OSError, ValueError) as exc:
            raise ServiceError(ErrorCode.INTERNAL, "invocation logs are unreadable") from exc
        return lines or None

    async def get_artifacts(
        self, invocation_id: str, caller: Principal | None = None
    ) -> list[Artifact] | None:
        invocation = await self._owned_invocation(invocation_id, caller)
        if invocation.artifacts:
            return invocation.artifacts
        return await self._artifacts.list(invocation.id) or None
