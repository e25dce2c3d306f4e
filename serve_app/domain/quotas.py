"""Quotas (contract §5.1/§9): whether a tenant may open one more session, a session or principal
may invoke once more this minute, a session may run one more invocation at once, and a finished
run's output and artifacts fit their caps. Every denial is a fixed message (the metrics' denial
reasons are matched on it)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from serve_app.domain.errors import ErrorCode, ServiceError
from serve_app.domain.execution import ExecutionResult
from serve_app.domain.models import Invocation, Session
from serve_app.domain.ports import QuotaStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuotaLimits:
    """Contract §5.1/§9 quotas; 0 turns one off."""

    rate_per_minute: int = 0
    rate_per_minute_per_principal: int = 0
    max_concurrency_per_session: int = 0
    max_output_bytes: int = 0
    max_artifacts: int = 0
    max_artifact_bytes: int = 0
    max_sessions_per_tenant: int = 0


class QuotaDenied(Exception):
    """An invocation over a quota: it ends `denied` (policy_denied, retryable)."""

    def __init__(self, reason: str, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class Quotas:
    def __init__(self, store: QuotaStore | None, limits: QuotaLimits) -> None:
        self._quotas = store
        self._limits = limits

    # sessions per tenant ------------------------------------------------------------------------

    async def take_tenant_slot(self, tenant_id: str, session_id: str, ttl: int) -> None:
        limit = self._limits.max_sessions_per_tenant
        if not limit or self._quotas is None:
            return
        # The slot's lease is the session's lifetime: an expired session frees it by itself.
        if not await self._quotas.acquire(f"tenant-sessions:{tenant_id}", session_id, limit, ttl):
            raise ServiceError(
                ErrorCode.POLICY_DENIED, "tenant session quota exceeded", retryable=True
            )

    async def release_tenant_slot(self, tenant_id: str, session_id: str) -> None:
        if self._limits.max_sessions_per_tenant and self._quotas is not None:
            await self._quotas.release(f"tenant-sessions:{tenant_id}", session_id)

    # invocations --------------------------------------------------------------------------------

    async def check_rates(self, session: Session) -> None:
        """Fixed one-minute windows, per session then per principal; every attempt counts."""
        if self._quotas is None:
            return
        if self._limits.rate_per_minute:
            retry = await self._quotas.hit(
                f"session:{session.id}", self._limits.rate_per_minute, 60
            )
            if retry is not None:
                raise QuotaDenied("session invocation rate limit exceeded", retry)
        if self._limits.rate_per_minute_per_principal:
            who = f"{session.principal.tenant_id.lower()}:{session.principal.actor_id.lower()}"
            retry = await self._quotas.hit(
                f"principal:{who}", self._limits.rate_per_minute_per_principal, 60
            )
            if retry is not None:
                raise QuotaDenied("principal invocation rate limit exceeded", retry)

    async def take_concurrency_slot(
        self, session: Session, invocation: Invocation, longest: float
    ) -> bool:
        """A slot for an invocation whose call takes at most `longest` seconds; False when
        there is no concurrency quota (nothing to release)."""
        limit = self._limits.max_concurrency_per_session
        if not limit or self._quotas is None:
            return False
        # The lease outlives the longest the call can take; a replica that dies mid-call
        # frees its slot when the lease runs out.
        lease = longest + 5
        if not await self._quotas.acquire(f"concurrency:{session.id}", invocation.id, limit, lease):
            raise QuotaDenied("session invocation concurrency limit exceeded", 1)
        return True

    async def release_concurrency_slot(self, session: Session, invocation: Invocation) -> None:
        assert self._quotas is not None
        try:
            await self._quotas.release(f"concurrency:{session.id}", invocation.id)
        except Exception:
            log.warning("could not release the slot of %s; its lease will", invocation.id)

    def check_result(self, result: ExecutionResult) -> None:
        """After a successful run (its side effects have happened): output and artifact caps."""
        limits = self._limits
        if limits.max_output_bytes and result.output is not None:
            size = len(json.dumps(result.output, ensure_ascii=False).encode())
            if size > limits.max_output_bytes:
                raise QuotaDenied("invocation output size quota exceeded")
        if limits.max_artifacts and len(result.artifacts) > limits.max_artifacts:
            raise QuotaDenied("invocation artifact count quota exceeded")
        total = sum(len(blob.data) for blob in result.artifacts)
        if limits.max_artifact_bytes and total > limits.max_artifact_bytes:
            raise QuotaDenied("invocation artifact size quota exceeded")
