"""Session lifecycle: open a session (its id claimed first, its workspace made, then stored), look
it up for its owner (an expired one is removed on the spot), close it, sweep the expired ones, and
the tool catalog as a session sees it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from serve_app.domain import policy
from serve_app.domain.capability import Capability, Scope
from serve_app.domain.catalog import Catalog
from serve_app.domain.errors import ErrorCode, ServiceError, invalid_argument, not_found
from serve_app.domain.ids import SAFE_ID, is_safe_id, new_session_id
from serve_app.domain.models import Principal, Session
from serve_app.domain.ports import SessionStore, WorkspaceManager
from serve_app.domain.quotas import Quotas
from serve_app.domain.reporting import Reporting
from serve_app.domain.validation import (
    validated_allowed_paths,
    validated_metadata,
    validated_principal,
    validated_repo,
)

log = logging.getLogger(__name__)

FOREIGN_SESSION = "session does not belong to authenticated principal"


@dataclass(frozen=True)
class CreateSession:
    principal: Principal
    session_id: str | None = None
    repo_url: str | None = None
    repo_ref: str | None = None
    source_repo_path: str | None = None
    allowed_paths: list[str] | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    expires_in_seconds: int = 0


class Sessions:
    def __init__(
        self,
        *,
        sessions: SessionStore,
        workspaces: WorkspaceManager,
        catalog: Catalog,
        quotas: Quotas,
        reporting: Reporting,
        default_ttl_seconds: int,
        max_ttl_seconds: int,
        claim_seconds: int,
        clock: Callable[[], datetime],
    ) -> None:
        self._sessions = sessions
        self._workspaces = workspaces
        self._catalog = catalog
        self._quotas = quotas
        self._reporting = reporting
        self._default_ttl = default_ttl_seconds
        self._max_ttl = max_ttl_seconds
        # How long an id stays reserved by a create whose replica died before finishing it.
        self._claim_seconds = claim_seconds
        self._clock = clock

    async def create(self, request: CreateSession, caller: Principal | None = None) -> Session:
        """Open a session. An authenticated `caller` (trusted_headers) is the principal; the
        request's own principal is then ignored."""
        principal = validated_principal(caller or request.principal)
        session_id = request.session_id or new_session_id()
        if request.session_id is not None and not is_safe_id(request.session_id):
            raise invalid_argument(f"session_id must match {SAFE_ID.pattern} without '..'")
        allowed_paths = validated_allowed_paths(request.allowed_paths)
        metadata = validated_metadata(request.metadata)
        ttl = request.expires_in_seconds if request.expires_in_seconds > 0 else self._default_ttl
        if ttl > self._max_ttl:
            raise invalid_argument(f"expires_in_seconds must be at most {self._max_ttl}")
        repo_url, repo_ref = validated_repo(request.repo_url, request.repo_ref)
        source = request.source_repo_path or None
        # The id is reserved before anything is made: of two concurrent creates of one id (two
        # tenants, two replicas), one proceeds and the other gets 409 and leaves nothing.
        if not await self._sessions.claim(session_id, self._claim_seconds):
            raise ServiceError(ErrorCode.ALREADY_EXISTS, "session already exists")
        try:
            if await self._sessions.get(session_id) is not None:
                raise ServiceError(ErrorCode.ALREADY_EXISTS, "session already exists")
            began = time.monotonic()
            await self._quotas.take_tenant_slot(principal.tenant_id, session_id, ttl)
            try:
                session = await self._open(
                    session_id, principal, allowed_paths, metadata, ttl, repo_url, repo_ref, source
                )
            except BaseException:
                await self._quotas.release_tenant_slot(principal.tenant_id, session_id)
                raise
        finally:
            await self._sessions.release(session_id)
        elapsed = time.monotonic() - began
        await self._reporting.session_created(session, elapsed)
        return session

    async def _open(
        self,
        session_id: str,
        principal: Principal,
        allowed_paths: list[str],
        metadata: dict[str, str],
        ttl: int,
        repo_url: str | None,
        repo_ref: str | None,
        source: str | None,
    ) -> Session:
        workspace_path, runtime = await self._workspaces.create(
            session_id,
            principal,
            source_repo_path=source,
            repo_url=None if source else repo_url,
            repo_ref=None if source else repo_ref,
            metadata=metadata,
        )
        now = self._clock()
        session = Session(
            id=session_id,
            workspace_path=workspace_path,
            runtime=runtime,
            repo_url=repo_url,
            repo_ref=repo_ref,
            allowed_paths=allowed_paths,
            principal=principal,
            metadata=metadata or None,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl),
        )
        try:
            await self._sessions.put(session)
        except BaseException:
            await self._workspaces.remove(session)
            raise
        return session

    async def get(self, session_id: str, caller: Principal | None = None) -> Session:
        """A live session; expired ones are removed on the spot and reported not found."""
        session = await self._sessions.get(session_id)
        if session is None:
            raise not_found("session not found")
        if session.expired(self._clock()):
            await self._discard(session)
            raise not_found("session not found")
        authorize(session.principal, caller)
        return session

    async def stored(self, session_id: str) -> Session | None:
        """The stored session as it is: no expiry check, no owner check."""
        return await self._sessions.get(session_id)

    async def close(self, session_id: str, caller: Principal | None = None) -> None:
        """Idempotent without authentication; an authenticated caller gets 404 for unknown ids
        and 403 for another principal's session."""
        if caller is not None:
            session = await self.get(session_id, caller)
        else:
            found = await self._sessions.get(session_id)
            if found is None:
                return
            session = found
        await self._discard(session)

    async def _discard(self, session: Session) -> None:
        await self._sessions.delete(session.id)
        await self._workspaces.remove(session)
        await self._quotas.release_tenant_slot(session.principal.tenant_id, session.id)

    async def sweep_expired(self, batch: int = 100) -> int:
        """Remove expired sessions and their workspaces; returns how many were removed."""
        removed = 0
        while True:
            expired = await self._sessions.expired(self._clock(), batch)
            failed = 0
            for session in expired:
                try:
                    await self._discard(session)
                    removed += 1
                except Exception:
                    failed += 1
                    log.exception("could not remove expired session %s", session.id)
            # A short batch is the last; one where nothing could be removed would come back
            # the same, so the next sweep tries again.
            if len(expired) < batch or failed == len(expired):
                return removed

    async def list_tools(
        self, session_id: str, caller: Principal | None = None
    ) -> list[Capability]:
        """The tools this session's runtime supports and its principal may call (with approval)."""
        session = await self.get(session_id, caller)
        return [
            capability
            for capability in self._catalog.all()
            if runtime_denial(capability, session) is None
            and policy.evaluate(capability, session, {}, approved=True).allowed
        ]


def authorize(owner: Principal, caller: Principal | None) -> None:
    """Ownership is tenant and actor (trimmed, case-sensitive); roles are not compared."""
    if caller is None:
        return
    if (owner.tenant_id.strip(), owner.actor_id.strip()) != (
        caller.tenant_id.strip(),
        caller.actor_id.strip(),
    ):
        raise ServiceError(ErrorCode.POLICY_DENIED, FOREIGN_SESSION)


KUBERNETES_RUNTIME_REQUIRED = "tool requires kubernetes runtime"
DELIVERY_TOOLS_DISABLED = "k8s delivery tools are disabled by configuration"
"""The precondition a delivery tool's capability carries while
`WORKSPACE_ENABLE_K8S_DELIVERY_TOOLS` is off (the k8s family declares it from the settings the
catalog is read with), and the denial it gets (contract §5.1 step 2)."""


def runtime_denial(capability: Capability, session: Session) -> str | None:
    """Why the session's runtime cannot run the tool, if it cannot (contract §5.1 step 2)."""
    if capability.scope is Scope.CLUSTER and session.runtime.kind != "kubernetes":
        return KUBERNETES_RUNTIME_REQUIRED
    if DELIVERY_TOOLS_DISABLED in capability.preconditions:
        return DELIVERY_TOOLS_DISABLED
    return None
