"""Persisting how an invocation ended: its output and logs as artifacts, then its terminal record
(retried, bounded), and the outcome the caller gets; also ending `failed` an invocation that
nobody will finish, and removing the artifacts of expired invocations."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from serve_app.domain.capability import Capability
from serve_app.domain.catalog import check_output
from serve_app.domain.errors import ErrorCode, ServiceError
from serve_app.domain.execution import ExecutionResult
from serve_app.domain.models import Artifact, Invocation, InvocationError, InvocationStatus
from serve_app.domain.ports import ArtifactStore, InvocationStore

log = logging.getLogger(__name__)

OUTPUT_ARTIFACT = "invocation-output.json"
LOGS_ARTIFACT = "invocation-logs.jsonl"
TERMINAL_RETRY_PAUSES = (0.1, 0.5, 1.0, 0.0)


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


class Results:
    def __init__(
        self,
        *,
        invocations: InvocationStore,
        artifacts: ArtifactStore,
        clock: Callable[[], datetime],
    ) -> None:
        self._invocations = invocations
        self._artifacts = artifacts
        self._clock = clock

    async def record(
        self, capability: Capability, invocation: Invocation, result: ExecutionResult
    ) -> InvokeOutcome:
        """The executor's result: artifacts first, then the terminal record."""
        fields: dict[str, Any] = {
            "output": result.output,
            "logs": result.logs or None,
            "exit_code": result.exit_code,
        }
        try:
            fields.update(await self._persist_artifacts(invocation.id, result))
        except Exception:
            log.exception("could not persist artifacts of %s", invocation.id)
            return await self.finish(
                invocation.model_copy(update=fields),
                Failure.INTERNAL,
                ErrorCode.INTERNAL,
                "could not persist invocation artifacts",
            )
        invocation = invocation.model_copy(update=fields)
        if result.error is not None:
            failure = Failure.TIMEOUT if result.error.code == ErrorCode.TIMEOUT else Failure.TOOL
            return await self.finish(
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
            return await self.finish(invocation, Failure.INTERNAL, exc.code, exc.message)
        return await self.finish(invocation, None)

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

    async def finish(
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
        """Persist the terminal record (`succeeded`, `denied` or `failed` by `failure`)."""
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

    async def end_unfinished(self, invocation_id: str, message: str) -> InvokeOutcome | None:
        """End `failed` (unavailable, retryable) an invocation that nobody will finish, unless its
        stored record has ended already (then only its lease entry goes)."""
        record = await self._invocations.get(invocation_id)
        if record is None or record.terminal:
            await self._invocations.forget(invocation_id)
            return None
        return await self.finish(
            record, Failure.UNAVAILABLE, ErrorCode.UNAVAILABLE, message, retryable=True
        )

    async def sweep_artifacts(self, batch: int = 1000) -> int:
        """Remove artifacts whose invocation records have expired; returns how many
        invocations' artifacts were removed."""
        removed = await self._artifacts.sweep(self._clock(), batch)
        if removed:
            log.info("sweeper removed the artifacts of %d expired invocations", removed)
        return removed
