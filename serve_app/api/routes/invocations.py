"""Tool invocation and the invocation read endpoints."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header

from serve_app.api.deps import CallerDep, ManagerDep
from serve_app.api.responses import STATUS_BY_FAILURE, JSONLineResponse, envelope, wire
from serve_app.api.schemas import (
    ArtifactsEnvelope,
    ErrorEnvelope,
    InvocationEnvelope,
    InvokeErrorEnvelope,
    InvokeToolRequest,
    LogsEnvelope,
)
from serve_app.domain.invoking import InvokeCommand

router = APIRouter(tags=["invocations"])

READ_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorEnvelope, "description": "An empty invocation id"},
    401: {"model": ErrorEnvelope, "description": "trusted_headers: bad or missing credentials"},
    403: {"model": ErrorEnvelope, "description": "Another principal's invocation"},
    404: {"model": ErrorEnvelope, "description": "Invocation not found"},
    405: {"model": ErrorEnvelope, "description": "Method not allowed"},
    500: {"model": ErrorEnvelope, "description": "Stored output or logs unreadable, or internal"},
    503: {"model": ErrorEnvelope, "description": "State store unavailable (retry)"},
}
INVOKE_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": InvokeErrorEnvelope, "description": "Invalid body or tool arguments"},
    401: {"model": ErrorEnvelope, "description": "trusted_headers: bad or missing credentials"},
    403: {
        "model": InvokeErrorEnvelope,
        "description": "Denied by policy, runtime or quota (Retry-After where waiting helps); "
        "or another principal's session",
    },
    404: {"model": ErrorEnvelope, "description": "Session or tool not found"},
    405: {"model": ErrorEnvelope, "description": "Method not allowed"},
    413: {"model": ErrorEnvelope, "description": "Request body over 2 MiB"},
    428: {"model": InvokeErrorEnvelope, "description": "The tool requires approved=true"},
    500: {"model": InvokeErrorEnvelope, "description": "The tool failed, or an internal error"},
    503: {"model": InvokeErrorEnvelope, "description": "State store or executor unavailable"},
    504: {"model": InvokeErrorEnvelope, "description": "The tool exceeded its timeout"},
}


@router.post(
    "/v1/sessions/{session_id}/tools/{tool_name}/invoke",
    response_model=InvocationEnvelope,
    responses=INVOKE_ERRORS,
)
async def invoke_tool(
    session_id: str,
    tool_name: str,
    body: InvokeToolRequest,
    manager: ManagerDep,
    caller: CallerDep,
    x_correlation_id: Annotated[str | None, Header()] = None,
) -> JSONLineResponse:
    """Run one tool call under policy. Replays with the same correlation id return the first
    invocation with HTTP 200 and do not run the tool again."""
    outcome = await manager.invoke(
        session_id,
        tool_name,
        InvokeCommand(
            args=body.args,
            approved=body.approved,
            correlation_id=body.correlation_id or x_correlation_id or None,
        ),
        caller,
    )
    invocation = wire(outcome.invocation)
    if outcome.failure is None or outcome.replayed:
        return JSONLineResponse({"invocation": invocation})
    error = outcome.invocation.error
    body_error = {"code": error.code, "message": error.message} if error else {}
    headers = {"Retry-After": str(outcome.retry_after)} if outcome.retry_after else None
    return JSONLineResponse(
        {"invocation": invocation, "error": body_error},
        status_code=STATUS_BY_FAILURE[outcome.failure],
        headers=headers,
    )


@router.get(
    "/v1/invocations/{invocation_id}", response_model=InvocationEnvelope, responses=READ_ERRORS
)
async def get_invocation(
    invocation_id: str, manager: ManagerDep, caller: CallerDep
) -> JSONLineResponse:
    """An invocation with its output."""
    return envelope(invocation=await manager.get_invocation(invocation_id, caller))


@router.get(
    "/v1/invocations/{invocation_id}/logs", response_model=LogsEnvelope, responses=READ_ERRORS
)
async def get_logs(invocation_id: str, manager: ManagerDep, caller: CallerDep) -> JSONLineResponse:
    """The invocation's log lines (`null` when it logged nothing)."""
    logs = await manager.get_logs(invocation_id, caller)
    return JSONLineResponse({"logs": [wire(line) for line in logs] if logs else None})


@router.get(
    "/v1/invocations/{invocation_id}/artifacts",
    response_model=ArtifactsEnvelope,
    responses=READ_ERRORS,
)
async def get_artifacts(
    invocation_id: str, manager: ManagerDep, caller: CallerDep
) -> JSONLineResponse:
    """The invocation's artifacts (`null` when there are none)."""
    artifacts = await manager.get_artifacts(invocation_id, caller)
    return JSONLineResponse({"artifacts": [wire(a) for a in artifacts] if artifacts else None})
