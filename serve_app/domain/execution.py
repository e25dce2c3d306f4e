"""Messages between the session manager and the tool executor: small, typed, no open resources."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from serve_app.domain.models import InvocationError, LogLine, Session


class ExecutionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    invocation_id: str
    tool_name: str
    args: dict[str, Any]
    session: Session
    timeout_seconds: float


class ArtifactBlob(BaseModel):
    name: str
    content_type: str
    data: bytes


class ExecutionResult(BaseModel):
    output: Any = None
    logs: list[LogLine] = Field(default_factory=list)
    exit_code: int = 0
    artifacts: list[ArtifactBlob] = Field(default_factory=list)
    error: InvocationError | None = None
