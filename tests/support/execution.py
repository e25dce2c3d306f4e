"""Driving tools directly through the ExecutionService, as the session manager does, without
HTTP or records: a session over a real workspace directory, and call helpers."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from serve_app.domain.errors import ErrorCode
from serve_app.domain.execution import ExecutionRequest, ExecutionResult
from serve_app.domain.models import Principal, Runtime, Session, utcnow
from serve_app.execution.executor import ExecutionService


def make_workspace(root: Path) -> Path:
    """`<root>/t/s/repo` with the per-session `home` beside it, as the local backend lays out."""
    workspace = root / "t" / "s" / "repo"
    workspace.mkdir(parents=True)
    (root / "t" / "s" / "home").mkdir()
    return workspace


def make_session(
    workspace: Path,
    allowed_paths: list[str] | None = None,
    *,
    session_id: str = "sess",
    actor: str = "agent",
    roles: list[str] | None = None,
    metadata: dict[str, str] | None = None,
) -> Session:
    now = utcnow()
    return Session(
        id=session_id,
        workspace_path=str(workspace),
        runtime=Runtime(kind="local"),
        allowed_paths=allowed_paths if allowed_paths is not None else ["."],
        principal=Principal(tenant_id="tenant", actor_id=actor, roles=roles or ["developer"]),
        metadata=metadata,
        created_at=now,
        expires_at=now + timedelta(hours=1),
    )


async def run(
    service: ExecutionService,
    session: Session,
    tool: str,
    args: dict[str, Any],
    timeout: float = 30,
) -> ExecutionResult:
    request = ExecutionRequest(
        invocation_id=f"inv-{time.monotonic_ns()}",
        tool_name=tool,
        args=args,
        session=session,
        timeout_seconds=timeout,
    )
    return await service.execute(request)


async def ok(
    service: ExecutionService, session: Session, tool: str, args: dict[str, Any]
) -> dict[str, Any]:
    """The output of a call that must succeed with exit code 0."""
    result = await run(service, session, tool, args)
    assert result.error is None, (result.error, result.output)
    assert result.exit_code == 0
    assert isinstance(result.output, dict)
    return result.output


async def fails(
    service: ExecutionService,
    session: Session,
    tool: str,
    args: dict[str, Any],
    code: ErrorCode,
    timeout: float = 30,
) -> ExecutionResult:
    """A call that must fail with `code` and a non-zero exit code."""
    result = await run(service, session, tool, args, timeout)
    assert result.error is not None, result.output
    assert result.error.code == code, result.error
    assert result.exit_code != 0
    return result
