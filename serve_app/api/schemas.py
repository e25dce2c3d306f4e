"""Request and response shapes of the HTTP contract (§1). Requests are strict: unknown fields and
wrong JSON types are refused."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from serve_app.domain.capability import Capability
from serve_app.domain.models import Artifact, Invocation, LogLine, Session
from serve_app.domain.observability import AuditRecord

SESSION_ID_PATTERN = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$"


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PrincipalBody(StrictBody):
    tenant_id: str = ""
    actor_id: str = ""
    roles: list[str] | None = None


class CreateSessionRequest(StrictBody):
    session_id: str | None = Field(
        default=None,
        description="Optional client-chosen id: [A-Za-z0-9][A-Za-z0-9_.-]{0,127} without '..'",
        # Documented here, checked by the service (its own message names the rule): the same
        # rule written without a lookahead, which JSON Schema patterns may not support.
        json_schema_extra={"pattern": SESSION_ID_PATTERN, "maxLength": 128},
    )
    repo_url: str | None = Field(default=None, description="Git URL cloned with --depth 1")
    repo_ref: str | None = Field(default=None, description="Branch or tag passed to --branch")
    source_repo_path: str | None = Field(
        default=None,
        description="Server directory copied into the workspace "
        "(under WORKSPACE_SOURCE_REPO_ROOTS)",
    )
    allowed_paths: list[str] | None = Field(default=None, description='Default ["."]')
    principal: PrincipalBody | None = None
    metadata: dict[str, str] | None = None
    expires_in_seconds: int = Field(default=0, description="<= 0 means 3600")


class InvokeToolRequest(StrictBody):
    correlation_id: str | None = Field(
        default=None, description="Replay key per (session, tool); else X-Correlation-Id"
    )
    args: Any = None
    approved: bool = False


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorEnvelope(BaseModel):
    error: ErrorBody


class InvokeErrorEnvelope(BaseModel):
    invocation: Invocation | None = None
    error: ErrorBody


class SessionEnvelope(BaseModel):
    session: Session


class ClosedEnvelope(BaseModel):
    closed: bool


class ToolsEnvelope(BaseModel):
    tools: list[Capability]


class InvocationEnvelope(BaseModel):
    invocation: Invocation


class LogsEnvelope(BaseModel):
    logs: list[LogLine] | None


class ArtifactsEnvelope(BaseModel):
    artifacts: list[Artifact] | None


class AuditEnvelope(BaseModel):
    audit: list[AuditRecord]


class HealthResponse(BaseModel):
    status: str
