"""The invocation pipeline of contract §3.2: replay by correlation id, a `running` record persisted
before anything runs, then rates, runtime support, argument validation, policy and one executor
call under a concurrency slot and a renewed lease, shielded from the caller; and ending the
invocations nobody will finish (cancelled by a drain, or abandoned by a replica that stopped)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from serve_app import logs
from serve_app.domain import policy
from serve_app.domain.capability import Capability
from serve_app.domain.catalog import Catalog
from serve_app.domain.errors import ErrorCode, ServiceError, invalid_argument, not_found
from serve_app.domain.execution import ExecutionRequest, ExecutionResult
from serve_app.domain.ids import new_invocation_id
from serve_app.domain.models import Invocation, InvocationStatus, Principal, Session
from serve_app.domain.ports import Executor, InvocationStore
from serve_app.domain.quotas import QuotaDenied, Quotas
from serve_app.domain.reading import InvocationReader
from serve_app.domain.reporting import Reporting
from serve_app.domain.results import Failure, InvokeOutcome, Results
from serve_app.domain.sessions import Sessions, runtime_denial

log = logging.getLogger(__name__)

EXECUTOR_GRACE_SECONDS = 10.0
MAX_CORRELATION_CHARS = 256
DRAIN_CANCEL_SECONDS = 2.0
ABANDONED_MESSAGE = "the replica running this invocation stopped before it ended; retry"
DRAINED_MESSAGE = "the replica running this invocation shut down before it ended; retry"


@dataclass(frozen=True)
class InvokeCommand:
    args: Any = None
    approved: bool = False
    correlation_id: str | None = None


class Invoker:
    def __init__(
        self,
        *,
        sessions: Sessions,
        invocations: InvocationStore,
        catalog: Catalog,
        executor: Executor,
        quotas: Quotas,
        results: Results,
        reader: InvocationReader,
        reporting: Reporting,
        lease_seconds: float,
        clock: Callable[[], datetime],
    ) -> None:
        self._sessions = sessions
        self._invocations = invocations
        self._catalog = catalog
        self._executor = executor
        self._quotas = quotas
        self._results = results
        self._reader = reader
        self._reporting = reporting
        self._lease_seconds = lease_seconds
        self._clock = clock
        self._in_flight: dict[asyncio.Task[InvokeOutcome], tuple[Session, Invocation]] = {}

    async def invoke(
        self,
        session_id: str,
        tool_name: str,
        command: InvokeCommand,
        caller: Principal | None = None,
    ) -> InvokeOutcome:
        session = await self._sessions.get(session_id, caller)
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
                return InvokeOutcome(invocation=await self._reader.hydrate(previous), replayed=True)
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
            return InvokeOutcome(invocation=await self._reader.hydrate(previous), replayed=True)
        # Shielded: a caller that goes away does not leave the record `running` forever.
        task = asyncio.create_task(self._run(session, capability, invocation, command))
        self._in_flight[task] = (session, invocation)
        task.add_done_callback(self._forget_task)
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
        self._reporting.invocation_finished(outcome.invocation, session)
        return outcome

    def _forget_task(self, task: asyncio.Task[InvokeOutcome]) -> None:
        self._in_flight.pop(task, None)

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

    async def _governed(
        self,
        session: Session,
        capability: Capability,
        invocation: Invocation,
        command: InvokeCommand,
    ) -> InvokeOutcome:
        try:
            return await self._govern_and_execute(session, capability, invocation, command)
        except QuotaDenied as denied:
            return await self._results.finish(
                invocation,
                Failure.DENIED,
                ErrorCode.POLICY_DENIED,
                denied.reason,
                retryable=True,
                retry_after=denied.retry_after,
            )
        except ServiceError as exc:
            failure = Failure.UNAVAILABLE if exc.code is ErrorCode.UNAVAILABLE else Failure.INTERNAL
            return await self._results.finish(
                invocation, failure, exc.code, exc.message, retryable=exc.retryable
            )

    async def _govern_and_execute(
        self,
        session: Session,
        capability: Capability,
        invocation: Invocation,
        command: InvokeCommand,
    ) -> InvokeOutcome:
        finish = self._results.finish
        await self._quotas.check_rates(session)
        denial = runtime_denial(capability, session)
        if denial is not None:
            return await finish(invocation, Failure.DENIED, ErrorCode.POLICY_DENIED, denial)
        try:
            args = self._catalog.validate_args(capability, command.args)
        except ServiceError as exc:
            return await finish(invocation, Failure.INVALID, exc.code, exc.message)
        decision = policy.evaluate(capability, session, args, command.approved)
        if not decision.allowed:
            code = decision.code or ErrorCode.POLICY_DENIED
            failure = Failure.APPROVAL if code is ErrorCode.APPROVAL_REQUIRED else Failure.DENIED
            return await finish(invocation, failure, code, decision.reason)
        timeout = float(capability.constraints.timeout_seconds)
        slot = await self._quotas.take_concurrency_slot(
            session, invocation, timeout + EXECUTOR_GRACE_SECONDS
        )
        try:
            result = await self._execute(capability, session, invocation, args, timeout)
        finally:
            if slot:
                await self._quotas.release_concurrency_slot(session, invocation)
        if isinstance(result, InvokeOutcome):
            return result
        if result.error is None:
            self._quotas.check_result(result)
        return await self._results.record(capability, invocation, result)

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
        finish = self._results.finish
        try:
            return await asyncio.wait_for(
                self._executor.execute(request), timeout + EXECUTOR_GRACE_SECONDS
            )
        except TimeoutError:
            return await finish(
                invocation,
                Failure.TIMEOUT,
                ErrorCode.TIMEOUT,
                f"{capability.name} timed out after {timeout:g}s",
                exit_code=124,
                retryable=True,
            )
        except ServiceError as exc:
            failure = Failure.UNAVAILABLE if exc.code is ErrorCode.UNAVAILABLE else Failure.INTERNAL
            return await finish(invocation, failure, exc.code, exc.message, retryable=exc.retryable)
        except asyncio.CancelledError:
            # The executor call was cancelled, not this run (which `invoke` shields from its
            # caller): under Serve a caller that goes away cancels the executor call too. Record
            # how it ended rather than leave it `running` until its lease runs out.
            current = asyncio.current_task()
            if current is None or current.cancelling():
                raise
            return await finish(
                invocation,
                Failure.UNAVAILABLE,
                ErrorCode.UNAVAILABLE,
                f"{capability.name} was cancelled before it ended; retry",
                retryable=True,
            )
        except Exception:
            log.exception("executor call failed for %s", invocation.id)
            return await finish(
                invocation,
                Failure.UNAVAILABLE,
                ErrorCode.UNAVAILABLE,
                "tool executor unavailable",
                retryable=True,
            )

    # invocations nobody will finish -------------------------------------------------------------

    async def sweep_abandoned(self, batch: int = 100) -> int:
        """End `failed` (unavailable, retryable) the invocations whose replica stopped renewing
        their lease before they ended; returns how many."""
        ended = 0
        for invocation_id in await self._invocations.abandoned(self._clock(), batch):
            try:
                outcome = await self._results.end_unfinished(invocation_id, ABANDONED_MESSAGE)
                if outcome is None:
                    continue
                ended += 1
                session = await self._sessions.stored(outcome.invocation.session_id)
            except Exception:
                # The next sweep tries again; the others of this batch go on.
                log.exception("could not end abandoned invocation %s", invocation_id)
                continue
            if session is not None:
                self._reporting.invocation_finished(outcome.invocation, session)
        return ended

    async def drain(self, timeout: float) -> int:
        """Before the replica stops: wait up to `timeout` for in-flight invocations to end, then
        cancel those still running and end them `failed` (unavailable, retryable), so that none
        is left `running`; then wait (bounded) for the reports to the observers. Returns how
        many invocations it ended."""
        pending: set[asyncio.Task[InvokeOutcome]] = set(self._in_flight)
        if pending:
            _, pending = await asyncio.wait(pending, timeout=timeout)
        unfinished = [(task, *self._in_flight[task]) for task in pending if task in self._in_flight]
        for task, _, _ in unfinished:
            task.cancel()
        if unfinished:
            # The cancelled runs stop their heartbeats and release their slots first.
            await asyncio.wait([task for task, _, _ in unfinished], timeout=DRAIN_CANCEL_SECONDS)
        outcomes = await asyncio.gather(
            *(self._end_drained(invocation) for _, _, invocation in unfinished)
        )
        ended = 0
        for (_, session, _), outcome in zip(unfinished, outcomes, strict=True):
            if outcome is not None:
                self._reporting.invocation_finished(outcome.invocation, session)
                ended += 1
        if ended:
            log.warning("drain ended %d invocations that were still running", ended)
        await self._reporting.reported(timeout)
        return ended

    async def _end_drained(self, invocation: Invocation) -> InvokeOutcome | None:
        try:
            return await self._results.end_unfinished(invocation.id, DRAINED_MESSAGE)
        except Exception:
            # Its lease runs out and the sweeper of another replica ends it.
            log.exception("could not end invocation %s while draining", invocation.id)
            return None


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
