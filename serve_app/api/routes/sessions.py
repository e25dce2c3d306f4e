"""Sessions: create, read, close, and the session's tool catalog."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from serve_app.api.deps import CallerDep, ManagerDep
from serve_app.api.responses import JSONLineResponse, envelope
from serve_app.api.schemas import (
    AuditEnvelope,
    ClosedEnvelope,
    CreateSessionRequest,
    ErrorEnvelope,
    SessionEnvelope,
    ToolsEnvelope,
)
from serve_app.domain.models import Principal
from serve_app.domain.sessions import CreateSession

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorEnvelope,
        "description": "Invalid request body or argument, or an empty session id",
    },
    401: {
        "model": ErrorEnvelope,
        "description": "trusted_headers mode: bad or missing credentials",
    },
    403: {"model": ErrorEnvelope, "description": "Another principal's session, or a quota"},
    404: {"model": ErrorEnvelope, "description": "Session not found or expired"},
    405: {"model": ErrorEnvelope, "description": "Method not allowed"},
    500: {"model": ErrorEnvelope, "description": "Internal or backend failure"},
    503: {"model": ErrorEnvelope, "description": "State store unavailable (retry)"},
}


@router.post(
    "",
    status_code=201,
    response_model=SessionEnvelope,
    responses={
        400: ERRORS[400],
        401: ERRORS[401],
        405: ERRORS[405],
        500: ERRORS[500],
        403: {
            "model": ErrorEnvelope,
            "description": "A repository source that is not allowed (source roots, transports), "
            "or the tenant session quota",
        },
        503: {"model": ErrorEnvelope, "description": "State store unavailable (retry)"},
        409: {"model": ErrorEnvelope, "description": "session_id already in use"},
        413: {"model": ErrorEnvelope, "description": "Request body over 2 MiB"},
    },
)
async def create_session(
    body: CreateSessionRequest, manager: ManagerDep, caller: CallerDep
) -> JSONLineResponse:
    """Open a session: an isolated workspace, optionally seeded from a repository. In
    trusted_headers mode the principal comes from the headers and the body's is ignored."""
    principal = body.principal
    session = await manager.create_session(
        CreateSession(
            principal=Principal(
                tenant_id=principal.tenant_id if principal else "",
                actor_id=principal.actor_id if principal else "",
                roles=(principal.roles or []) if principal else [],
            ),
            session_id=body.session_id,
            repo_url=body.repo_url,
            repo_ref=body.repo_ref,
            source_repo_path=body.source_repo_path,
            allowed_paths=body.allowed_paths,
            metadata=body.metadata or {},
            expires_in_seconds=body.expires_in_seconds,
        ),
        caller,
    )
    return envelope(201, session=session)


@router.get(
    "/{session_id}",
    response_model=SessionEnvelope,
    responses=ERRORS,
)
async def get_session(session_id: str, manager: ManagerDep, caller: CallerDep) -> JSONLineResponse:
    """Read a live session, including `expires_at`. Reading never extends its lifetime."""
    return envelope(session=await manager.get_session(session_id, caller))


@router.delete(
    "/{session_id}",
    response_model=ClosedEnvelope,
    responses=ERRORS,
)
async def close_session(
    session_id: str, manager: ManagerDep, caller: CallerDep
) -> JSONLineResponse:
    """Close a session and delete its workspace. Idempotent in payload mode (unknown ids also
    answer closed); in trusted_headers mode an unknown id is 404."""
    await manager.close_session(session_id, caller)
    return JSONLineResponse({"closed": True})


@router.get(
    "/{session_id}/audit",
    response_model=AuditEnvelope,
    responses=ERRORS,
)
async def audit_trail(
    session_id: str,
    manager: ManagerDep,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONLineResponse:
    """The session's audit trail: one record per terminal invocation, oldest first (the last
    `limit`). Metadata secrets are redacted; arguments and outputs are not audited."""
    records = await manager.audit_trail(session_id, caller, limit)
    return JSONLineResponse({"audit": [record.model_dump(mode="json") for record in records]})


@router.get(
    "/{session_id}/tools",
    response_model=ToolsEnvelope,
    responses=ERRORS,
)
async def list_tools(session_id: str, manager: ManagerDep, caller: CallerDep) -> JSONLineResponse:
    """Capabilities this session may use, sorted by name (approval-gated tools included)."""
    tools = await manager.list_tools(session_id, caller)
    return JSONLineResponse(
        {"tools": [tool.model_dump(mode="json", exclude_none=True) for tool in tools]}
    )
