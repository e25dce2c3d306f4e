"""The session manager's domain: session lifecycle and expiry, the tool catalog as a session sees
it, and the invocation pipeline of contract §3.2 — policy first, a `running` record persisted
before anything runs, a terminal record after."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from serve_app import logs
from serve_app.domain import policy
from serve_app.domain.capability import Capability, Scope
from serve_app.domain.catalog import Catalog, check_output
from serve_app.domain.errors import ErrorCode, ServiceError, invalid_argument, not_found
from serve_app.domain.execution import ExecutionRequest, ExecutionResult
from serve_app.domain.ids import SAFE_ID, is_safe_id, new_invocation_id, new_session_id
from serve_app.domain.models import (
    Artifact,
    Invocation,
    InvocationError,
    InvocationStatus,
    LogLine,
    Principal,
    Session,
    utcnow,
)
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
from serve_app.domain.validation import (
    validated_allowed_paths,
    validated_metadata,
    validated_principal,
    validated_repo,
)

log = logging.getLogger(__name__)

OUTPUT_ARTIFACT = "invocation-output.json"
LOGS_ARTIFACT = "invocation-logs.jsonl"
EXECUTOR_GRACE_SECONDS = 10.0
TERMINAL_RETRY_PAUSES = (0.1, 0.5, 1.0, 0.0)
OBSERVER_TIMEOUT_SECONDS = 5.0
MAX_CORRELATION_CHARS = 256


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


@dataclass(frozen=True)
class InvokeCommand:
    args: Any = None
    approved: bool = False
    correlation_id: str | None = None


class Failure(StrEnum):
    """Why an invocation did not succeed; the HTTP layer maps each to a status code."""

    DENIED = "denied"
    APPROVAL = "approval"
    INVALID = "invalid"
    TOOL = "tool"
    TIMEOUT = "timeout"
    INTERNAL = "internal"
    UNAVAILABLE = "unavailable"


class InvokeOutcome(BaseModel):
    invocation: Invocation
    failure: Failure | None = None
    replayed: bool = False
    retry_after: int | None = None


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


class _Denied(Exception):
    def __init__(self, reason: str, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


FOREIGN_SESSION = "session does not belong to authenticated principal"


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
        limits: QuotaLimits = QuotaLimits(),
        observers: Sequence[Observer] = (),
        metrics: MetricsRecorder | None = None,
        audit: AuditLog | None = None,
        default_ttl_seconds: int = 3600,
        max_ttl_seconds: int = 7 * 86400,
        create_timeout_seconds: int = 900,
        invocation_lease_seconds: float = 30.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._invocations = invocations
        self._artifacts = artifacts
        self._workspaces = workspaces
        self._catalog = catalog
        self._executor = executor
        self._quotas = quotas
        self._limits = limits
        self._observers = tuple(observers)
        self._metrics = metrics
        self._audit = audit
        self._default_ttl = default_ttl_seconds
        self._max_ttl = max_ttl_seconds
        # How long an id stays reserved by a create whose replica died before finishing it.
        self._claim_seconds = create_timeout_seconds
        self._lease_seconds = invocation_lease_seconds
        self._clock = clock
        self._in_flight: set[asyncio.Task[InvokeOutcome]] = set()
        self._reporting: set[asyncio.Task[None]] = set()

    # sessions -----------------------------------------------------------------------------------

    async def create_session(
        self, request: CreateSession, caller: Principal | None = None
    ) -> Session:
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
            await self._take_tenant_slot(principal.tenant_id, session_id, ttl)
            try:
                session = await self._open(
                    session_id, principal, allowed_paths, metadata, ttl, repo_url, repo_ref, source
                )
            except BaseException:
                await self._release_tenant_slot(principal.tenant_id, session_id)
                raise
        finally:
            await self._sessions.release(session_id)
        elapsed = time.monotonic() - began
        await asyncio.gather(
            *(_notify(observer.session_created(session, elapsed)) for observer in self._observers)
        )
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

    async def _take_tenant_slot(self, tenant_id: str, session_id: str, ttl: int) -> None:
        limit = self._limits.max_sessions_per_tenant
        if not limit or self._quotas is None:
            return
        # The slot's lease is the session's lifetime: an expired session frees it by itself.
        if not await self._quotas.acquire(f"tenant-sessions:{tenant_id}", session_id, limit, ttl):
            raise ServiceError(
                ErrorCode.POLICY_DENIED, "tenant session quota exceeded", retryable=True
            )

    async def _release_tenant_slot(self, tenant_id: str, session_id: str) -> None:
        if self._limits.max_sessions_per_tenant and self._quotas is not None:
            await self._quotas.release(f"tenant-sessions:{tenant_id}", session_id)

    async def get_session(self, session_id: str, caller: Principal | None = None) -> Session:
        """A live session; expired ones are removed on the spot and reported not found."""
        session = await self._sessions.get(session_id)
        if session is None:
            raise not_found("session not found")
        if session.expired(self._clock()):
            await self._discard(session)
            raise not_found("session not found")
        _authorize(session.principal, caller)
        return session

    async def close_session(self, session_id: str, caller: Principal | None = None) -> None:
        """Idempotent without authentication; an authenticated caller gets 404 for unknown ids
        and 403 for another principal's session."""
        if caller is not None:
            session = await self.get_session(session_id, caller)
        else:
            found = await self._sessions.get(session_id)
            if found is None:
                return
            session = found
        await self._discard(session)

    async def _discard(self, session: Session) -> None:
        await self._sessions.delete(session.id)
        await self._workspaces.remove(session)
        await self._release_tenant_slot(session.principal.tenant_id, session.id)

    async def sweep_expired(self, batch: int = 100) -> int:
        """Remove expired sessions and their workspaces; returns how many were removed."""
        removed = 0
        while True:
            expired = await self._sessions.expired(self._clock(), batch)
            for session in expired:
                try:
                    await self._discard(session)
                    removed += 1
                except Exception:
                    log.exception("could not remove expired session %s", session.id)
            if len(expired) < batch:
                return removed

    async def sweep_artifacts(self, batch: int = 1000) -> int:
        """Remove artifacts whose invocation records have expired; returns how many
        invocations' artifacts were removed."""
        removed = await self._artifacts.sweep(self._clock(), batch)
        if removed:
            log.info("sweeper removed the artifacts of %d expired invocations", removed)
        return removed

    # catalog ------------------------------------------------------------------------------------

    async def list_tools(
        self, session_id: str, caller: Principal | None = None
    ) -> list[Capability]:
        session = await self.get_session(session_id, caller)
        return [
            capability
            for capability in self._catalog.all()
            if _runtime_denial(capability, session) is None
            and policy.evaluate(capability, session, {}, approved=True).allowed
        ]

    # invocations --------------------------------------------------------------------------------

    async def invoke(
        self,
        session_id: str,
        tool_name: str,
        command: InvokeCommand,
        caller: Principal | None = None,
    ) -> InvokeOutcome:
        session = await self.get_session(session_id, caller)
        capability = self._catalog.get(tool_name)
        if capability is None:
            raise not_found("tool not found")
        correlation_id = command.correlation_id or None
        if correlation_id is not None and len(correlation_id) > MAX_CORRELATION_CHARS:
            raise invalid_argument(f"correlation_id is longer than {MAX_CORRELATION_CHARS} chars")
        if correlation_id:
            previous = await self._invocations.find_by_correlation(
                correlation_scope(session), capability.name, correlation_id
            )
            if previous is not None and _owned_by(previous, session):
                return InvokeOutcome(invocation=await self._hydrate(previous), replayed=True)
        invocation = Invocation(
            id=new_invocation_id(),
            session_id=session.id,
            tool_name=capability.name,
            correlation_id=correlation_id,
            status=InvocationStatus.RUNNING,
            started_at=self._clock(),
            trace_name=capability.observability.trace_name,
            span_name=capability.observability.span_name,
            owner=Principal(
                tenant_id=session.principal.tenant_id, actor_id=session.principal.actor_id
            ),
            correlation_scope=correlation_scope(session),
        )
        logs.bind(session=session.id, invocation=invocation.id)
        # Nothing runs unless its `running` record is persisted: a store failure ends the call here.
        try:
            lease = self._clock() + timedelta(seconds=self._lease_seconds)
            previous = await self._invocations.create(invocation, lease)
        except ServiceError:
            raise
        except Exception as exc:
            log.exception("could not persist invocation %s", invocation.id)
            raise ServiceError(ErrorCode.INTERNAL, "could not persist the invocation") from exc
        if previous is not None:
            if not _owned_by(previous, session):
                raise ServiceError(ErrorCode.INTERNAL, "correlation id held by another principal")
            return InvokeOutcome(invocation=await self._hydrate(previous), replayed=True)
        # Shielded: a caller that goes away does not leave the record `running` forever.
        task = asyncio.create_task(self._run(session, capability, invocation, command))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        return await asyncio.shield(task)

    async def _run(
        self,
        session: Session,
        capability: Capability,
        invocation: Invocation,
        command: InvokeCommand,
    ) -> InvokeOutcome:
        heartbeat = asyncio.create_task(self._heartbeat(invocation.id))
        try:
            outcome = await self._governed(session, capability, invocation, command)
        finally:
            heartbeat.cancel()
        self._report(outcome.invocation, session)
        return outcome

    async def _hold(self, invocation_id: str) -> None:
        until = self._clock() + timedelta(seconds=self._lease_seconds)
        try:
            await self._invocations.hold(invocation_id, until)
        except Exception:
            log.warning("could not renew the lease of invocation %s", invocation_id)

    async def _heartbeat(self, invocation_id: str) -> None:
        """While this replica runs the invocation, its lease stays ahead of the sweeper."""
        while True:
            await asyncio.sleep(self._lease_seconds / 3)
            await self._hold(invocation_id)

    async def sweep_abandoned(self, batch: int = 100) -> int:
        """End `failed` (unavailable, retryable) the invocations whose replica stopped renewing
        their lease before they ended; returns how many."""
        ended = 0
        for invocation_id in await self._invocations.abandoned(self._clock(), batch):
            record = await self._invocations.get(invocation_id)
            if record is None or record.terminal:
                await self._invocations.forget(invocation_id)
                continue
            outcome = await self._finish(
                record,
                Failure.UNAVAILABLE,
                ErrorCode.UNAVAILABLE,
                "the replica running this invocation stopped before it ended; retry",
                retryable=True,
            )
            session = await self._sessions.get(record.session_id)
            if session is not None:
                self._report(outcome.invocation, session)
            ended += 1
        return ended

    def _report(self, invocation: Invocation, session: Session) -> None:
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

    async def _reported(self, timeout: float = OBSERVER_TIMEOUT_SECONDS) -> None:
        if self._reporting:
            await asyncio.wait(set(self._reporting), timeout=timeout)

    async def _governed(
        self,
        session: Session,
        capability: Capability,
        invocation: Invocation,
        command: InvokeCommand,
    ) -> InvokeOutcome:
        try:
            return await self._govern_and_execute(session, capability, invocation, command)
        except _Denied as denied:
            return await self._finish(
                invocation,
                Failure.DENIED,
                ErrorCode.POLICY_DENIED,
                denied.reason,
                retryable=True,
                retry_after=denied.retry_after,
            )
        except ServiceError as exc:
            failure = Failure.UNAVAILABLE if exc.code is ErrorCode.UNAVAILABLE else Failure.INTERNAL
            return await self._finish(
                invocation, failure, exc.code, exc.message, retryable=exc.retryable
            )

    async def _govern_and_execute(
        self,
        session: Session,
        capability: Capability,
        invocation: Invocation,
        command: InvokeCommand,
    ) -> InvokeOutcome:
        await self._check_rates(session)
        denial = _runtime_denial(capability, session)
        if denial is not None:
            return await self._finish(invocation, Failure.DENIED, ErrorCode.POLICY_DENIED, denial)
        try:
            args = self._catalog.validate_args(capability, command.args)
        except ServiceError as exc:
            return await self._finish(invocation, Failure.INVALID, exc.code, exc.message)
        decision = policy.evaluate(capability, session, args, command.approved)
        if not decision.allowed:
            code = decision.code or ErrorCode.POLICY_DENIED
            failure = Failure.APPROVAL if code is ErrorCode.APPROVAL_REQUIRED else Failure.DENIED
            return await self._finish(invocation, failure, code, decision.reason)
        timeout = float(capability.constraints.timeout_seconds)
        slot = await self._take_concurrency_slot(session, invocation, timeout)
        try:
            result = await self._execute(capability, session, invocation, args, timeout)
        finally:
            if slot:
                await self._release_concurrency_slot(session, invocation)
        if isinstance(result, InvokeOutcome):
            return result
        if result.error is None:
            self._check_result_quotas(result)
        return await self._record_result(capability, invocation, result)

    async def _execute(
        self,
        capability: Capability,
        session: Session,
        invocation: Invocation,
        args: dict[str, Any],
        timeout: float,
    ) -> ExecutionResult | InvokeOutcome:
        request = ExecutionRequest(
            invocation_id=invocation.id,
            tool_name=capability.name,
            args=args,
            session=session,
            timeout_seconds=timeout,
        )
        try:
            return await asyncio.wait_for(
                self._executor.execute(request), timeout + EXECUTOR_GRACE_SECONDS
            )
        except TimeoutError:
            return await self._finish(
                invocation,
                Failure.TIMEOUT,
                ErrorCode.TIMEOUT,
                f"{capability.name} timed out after {timeout:g}s",
                exit_code=124,
                retryable=True,
            )
        except ServiceError as exc:
            failure = Failure.UNAVAILABLE if exc.code is ErrorCode.UNAVAILABLE else Failure.INTERNAL
            return await self._finish(
                invocation, failure, exc.code, exc.message, retryable=exc.retryable
            )
        except Exception:
            log.exception("executor call failed for %s", invocation.id)
            return await self._finish(
                invocation,
                Failure.UNAVAILABLE,
                ErrorCode.UNAVAILABLE,
                "tool executor unavailable",
                retryable=True,
            )

    async def _check_rates(self, session: Session) -> None:
        """Fixed one-minute windows, per session then per principal; every attempt counts."""
        if self._quotas is None:
            return
        if self._limits.rate_per_minute:
            retry = await self._quotas.hit(
                f"session:{session.id}", self._limits.rate_per_minute, 60
            )
            if retry is not None:
                raise _Denied("session invocation rate limit exceeded", retry)
        if self._limits.rate_per_minute_per_principal:
            who = f"{session.principal.tenant_id.lower()}:{session.principal.actor_id.lower()}"
            retry = await self._quotas.hit(
                f"principal:{who}", self._limits.rate_per_minute_per_principal, 60
            )
            if retry is not None:
                raise _Denied("principal invocation rate limit exceeded", retry)

    async def _take_concurrency_slot(
        self, session: Session, invocation: Invocation, timeout: float
    ) -> bool:
        limit = self._limits.max_concurrency_per_session
        if not limit or self._quotas is None:
            return False
        # The lease outlives the longest the call can take; a replica that dies mid-call
        # frees its slot when the lease runs out.
        lease = timeout + EXECUTOR_GRACE_SECONDS + 5
        if not await self._quotas.acquire(f"concurrency:{session.id}", invocation.id, limit, lease):
            raise _Denied("session invocation concurrency limit exceeded", 1)
        return True

    async def _release_concurrency_slot(self, session: Session, invocation: Invocation) -> None:
        assert self._quotas is not None
        try:
            await self._quotas.release(f"concurrency:{session.id}", invocation.id)
        except Exception:
            log.warning("could not release the slot of %s; its lease will", invocation.id)

    def _check_result_quotas(self, result: ExecutionResult) -> None:
        """After a successful run (its side effects have happened): output and artifact caps."""
        limits = self._limits
        if limits.max_output_bytes and result.output is not None:
            size = len(json.dumps(result.output, ensure_ascii=False).encode())
            if size > limits.max_output_bytes:
                raise _Denied("invocation output size quota exceeded")
        if limits.max_artifacts and len(result.artifacts) > limits.max_artifacts:
            raise _Denied("invocation artifact count quota exceeded")
        total = sum(len(blob.data) for blob in result.artifacts)
        if limits.max_artifact_bytes and total > limits.max_artifact_bytes:
            raise _Denied("invocation artifact size quota exceeded")

    async def _record_result(
        self, capability: Capability, invocation: Invocation, result: ExecutionResult
    ) -> InvokeOutcome:
        fields: dict[str, Any] = {
            "output": result.output,
            "logs": result.logs or None,
            "exit_code": result.exit_code,
        }
        try:
            fields.update(await self._persist_artifacts(invocation.id, result))
        except Exception:
            log.exception("could not persist artifacts of %s", invocation.id)
            return await self._finish(
                invocation.model_copy(update=fields),
                Failure.INTERNAL,
                ErrorCode.INTERNAL,
                "could not persist invocation artifacts",
            )
        invocation = invocation.model_copy(update=fields)
        if result.error is not None:
            failure = Failure.TIMEOUT if result.error.code == ErrorCode.TIMEOUT else Failure.TOOL
            return await self._finish(
                invocation,
                failure,
                result.error.code,
                result.error.message,
                exit_code=result.exit_code,
                retryable=result.error.retryable,
            )
        try:
            check_output(capability, result.output)
        except ServiceError as exc:
            return await self._finish(invocation, Failure.INTERNAL, exc.code, exc.message)
        return await self._finish(invocation, None)

    async def _persist_artifacts(
        self, invocation_id: str, result: ExecutionResult
    ) -> dict[str, Any]:
        artifacts: list[Artifact] = []
        for blob in result.artifacts:
            artifacts.append(
                await self._artifacts.put(invocation_id, blob.name, blob.content_type, blob.data)
            )
        fields: dict[str, Any] = {}
        if result.output is not None:
            data = json.dumps(result.output, ensure_ascii=False).encode()
            output = await self._artifacts.put(
                invocation_id, OUTPUT_ARTIFACT, "application/json", data
            )
            artifacts.append(output)
            fields["output_ref"] = output.id
        if result.logs:
            lines = "".join(line.model_dump_json() + "\n" for line in result.logs).encode()
            logs = await self._artifacts.put(
                invocation_id, LOGS_ARTIFACT, "application/x-ndjson", lines
            )
            artifacts.append(logs)
            fields["logs_ref"] = logs.id
        if artifacts:
            fields["artifacts"] = artifacts
        return fields

    async def _finish(
        self,
        invocation: Invocation,
        failure: Failure | None,
        code: str | None = None,
        message: str = "",
        *,
        exit_code: int | None = None,
        retryable: bool = False,
        retry_after: int | None = None,
    ) -> InvokeOutcome:
        completed = self._clock()
        status = InvocationStatus.SUCCEEDED
        if failure in (Failure.DENIED, Failure.APPROVAL):
            status = InvocationStatus.DENIED
        elif failure is not None:
            status = InvocationStatus.FAILED
        update: dict[str, Any] = {
            "status": status,
            "completed_at": completed,
            "duration_ms": max(int((completed - invocation.started_at).total_seconds() * 1000), 0),
        }
        if exit_code is not None:
            update["exit_code"] = exit_code
        if failure is not None:
            update["error"] = InvocationError(code=str(code), message=message, retryable=retryable)
        final = invocation.model_copy(update=update)
        if not await self._persist_terminal(final):
            error = InvocationError(
                code=ErrorCode.UNAVAILABLE,
                message="the result could not be recorded: state store unavailable",
                retryable=True,
            )
            return InvokeOutcome(
                invocation=final.model_copy(update={"error": error}), failure=Failure.UNAVAILABLE
            )
        return InvokeOutcome(invocation=final, failure=failure, retry_after=retry_after)

    async def _persist_terminal(self, final: Invocation) -> bool:
        """The tool has run: try hard (bounded) to record how it ended."""
        for attempt, pause in enumerate(TERMINAL_RETRY_PAUSES):
            try:
                await self._invocations.update(final)
                return True
            except Exception:
                log.warning("persisting %s failed (attempt %d)", final.id, attempt + 1)
                await asyncio.sleep(pause)
        log.error("could not persist terminal state of %s", final.id)
        return False

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
            _authorize(owner, caller)
        return invocation

    async def get_invocation(
        self, invocation_id: str, caller: Principal | None = None
    ) -> Invocation:
        return await self._hydrate(await self._owned_invocation(invocation_id, caller))

    async def _hydrate(self, invocation: Invocation) -> Invocation:
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

    async def metrics(self) -> MetricsSnapshot:
        """The application's metrics: shared counters when backed by Valkey."""
        await self._reported()
        snapshot = await self._metrics.snapshot() if self._metrics else MetricsSnapshot()
        snapshot.sessions_active = await self._sessions.count_active(self._clock())
        return snapshot

    async def audit_trail(
        self, session_id: str, caller: Principal | None = None, limit: int = 100
    ) -> list[AuditRecord]:
        session = await self.get_session(session_id, caller)
        await self._reported()
        records = await self._audit.read(session_id, limit) if self._audit else []
        # A session id can be used again after its session closed: the earlier session's records
        # (perhaps another tenant's) are not this one's.
        return [
            record
            for record in records
            if record.at >= session.created_at
            and (record.tenant_id, record.actor_id)
            == (session.principal.tenant_id, session.principal.actor_id)
        ]

    async def drain(self, timeout: float) -> None:
        """Wait (bounded) for in-flight invocations to record their terminal state and to be
        reported to the observers."""
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=timeout)
        await self._reported(timeout)


async def _notify(event: Awaitable[None]) -> None:
    """Observers report; they never fail or block the call they observe for long."""
    try:
        await asyncio.wait_for(event, OBSERVER_TIMEOUT_SECONDS)
    except Exception:
        log.warning("an observer failed", exc_info=True)


def correlation_scope(session: Session) -> str:
    """What a correlation id is unique in: this session, not an earlier one with the same id."""
    return f"{session.id}@{session.created_at.isoformat()}"


def _owned_by(invocation: Invocation, session: Session) -> bool:
    """A replay goes only to the principal that owns the session."""
    owner = invocation.owner
    return owner is None or (owner.tenant_id, owner.actor_id) == (
        session.principal.tenant_id,
        session.principal.actor_id,
    )


def _authorize(owner: Principal, caller: Principal | None) -> None:
    """Ownership is tenant and actor (trimmed, case-sensitive); roles are not compared."""
    if caller is None:
        return
    if (owner.tenant_id.strip(), owner.actor_id.strip()) != (
        caller.tenant_id.strip(),
        caller.actor_id.strip(),
    ):
        raise ServiceError(ErrorCode.POLICY_DENIED, FOREIGN_SESSION)


def _runtime_denial(capability: Capability, session: Session) -> str | None:
    if capability.scope is Scope.CLUSTER and session.runtime.kind != "kubernetes":
        return "tool requires kubernetes runtime"
    return None
