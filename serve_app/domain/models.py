"""Wire-level records of the contract: principal, session, invocation, artifact, log line."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


def utcnow() -> datetime:
    return datetime.now(UTC)


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Principal(Record):
    tenant_id: str = ""
    actor_id: str = ""
    roles: list[str] = Field(default_factory=list)


class Runtime(Record):
    kind: Literal["local", "kubernetes"]
    namespace: str | None = None
    pod_name: str | None = None
    container: str | None = None
    workdir: str | None = None


class Session(Record):
    id: str
    workspace_path: str
    runtime: Runtime
    repo_url: str | None = None
    repo_ref: str | None = None
    allowed_paths: list[str]
    principal: Principal
    metadata: dict[str, str] | None = None
    created_at: datetime
    expires_at: datetime

    def expired(self, now: datetime) -> bool:
        return now > self.expires_at

    def meta(self, key: str) -> str:
        return (self.metadata or {}).get(key, "")


class InvocationStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DENIED = "denied"


class LogLine(Record):
    at: datetime
    channel: Literal["stdout", "stderr"]
    message: str


class Artifact(Record):
    id: str
    name: str
    path: str
    content_type: str
    size_bytes: int
    sha256: str
    created_at: datetime


class InvocationError(Record):
    code: str
    message: str
    retryable: bool = False


class Invocation(Record):
    id: str
    session_id: str
    tool_name: str
    correlation_id: str | None = None
    status: InvocationStatus
    started_at: datetime
    completed_at: datetime | None = None
    duration_ms: int = 0
    trace_name: str = "workspace.tools"
    span_name: str = ""
    exit_code: int = 0
    output: Any = None
    output_ref: str | None = None
    logs: list[LogLine] | None = None
    logs_ref: str | None = None
    artifacts: list[Artifact] | None = None
    error: InvocationError | None = None
    # Whose invocation this is (the session's tenant and actor): kept with the record for
    # ownership checks after the session is gone; never part of a response.
    owner: Principal | None = Field(default=None, exclude=True)
    # Which session the correlation id is unique in: the id and the session's creation time, so
    # that a later session with the same id (closed, reopened, perhaps by another tenant) starts
    # with no correlation entries. Never part of a response.
    correlation_scope: str | None = Field(default=None, exclude=True)

    @property
    def correlation_key_scope(self) -> str:
        return self.correlation_scope or self.session_id

    @property
    def terminal(self) -> bool:
        return self.status is not InvocationStatus.RUNNING
