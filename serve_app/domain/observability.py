"""What the service reports about itself: the metric families, the bounded denial reasons, the
audit record with its redaction rules (contract §10), and the observer port the session
service calls once per terminal invocation and once per created session."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, Field

from serve_app.domain.models import Invocation, InvocationStatus, Session

# Seconds; covers 10 ms to 60 s like the seed's millisecond buckets.
DURATION_BUCKETS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
SESSION_CREATE_BUCKETS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

# Denial messages are fixed strings of the policy engine and quota checks; the metric's `reason`
# label takes one of these bounded values, never free text.
_DENIAL_REASONS: tuple[tuple[str, str], ...] = (
    ("tool requires explicit approval", "approval_required"),
    ("principal roles cannot access tool scope", "scope"),
    ("high risk capability requires platform_admin role", "risk"),
    ("path outside allowed_paths", "path"),
    ("argument", "argument"),
    ("invalid args payload", "argument"),
    ("invalid path field payload", "argument"),
    ("invalid field payload", "argument"),
    ("not allowed", "allowlist"),
    ("tool requires kubernetes runtime", "runtime"),
    ("disabled by configuration", "runtime"),
    ("rate limit exceeded", "rate_limit"),
    ("concurrency limit exceeded", "concurrency_limit"),
    ("quota exceeded", "quota"),
)
DENIAL_REASONS = frozenset(reason for _, reason in _DENIAL_REASONS) | {"other"}


def denial_reason(message: str) -> str:
    for fragment, reason in _DENIAL_REASONS:
        if fragment in message:
            return reason
    return "other"


class HistogramSnapshot(BaseModel):
    buckets: list[int]
    """Non-cumulative counts per bucket of the family's bounds, plus one for +Inf."""
    sum: float = 0.0
    count: int = 0


class MetricsSnapshot(BaseModel):
    """The whole application's metrics at one moment (all replicas, when state is shared)."""

    invocations: dict[tuple[str, str], int] = Field(default_factory=dict)
    denied: dict[tuple[str, str], int] = Field(default_factory=dict)
    durations: dict[str, HistogramSnapshot] = Field(default_factory=dict)
    session_create: HistogramSnapshot = Field(
        default_factory=lambda: HistogramSnapshot(buckets=[0] * (len(SESSION_CREATE_BUCKETS) + 1))
    )
    sessions_active: int = 0
    pod_deletions: dict[str, int] = Field(default_factory=dict)
    """The kubernetes backend's pod janitor: deletions by reason (a bounded set)."""


def bucket_index(bounds: tuple[float, ...], value: float) -> int:
    for index, bound in enumerate(bounds):
        if value <= bound:
            return index
    return len(bounds)


class Observer(Protocol):
    async def invocation_finished(self, invocation: Invocation, session: Session) -> None: ...

    async def session_created(self, session: Session, seconds: float) -> None: ...


class MetricsRecorder(Observer, Protocol):
    async def snapshot(self) -> MetricsSnapshot: ...

    async def pod_deleted(self, reason: str) -> None:
        """A pod the kubernetes backend's janitor deleted (`reason`: a bounded set)."""
        ...


# --- audit -----------------------------------------------------------------------------------

_SECRET_KEYS = (
    "token", "secret", "password", "passwd", "api_key", "apikey", "authorization",
    "credential", "private_key", "connection_profile_endpoints_json",
)  # fmt: skip
REDACTED = "[REDACTED]"
_QUERY_SECRET = re.compile(
    r"(?i)\b(token|access_token|password|passwd|secret|api_key|apikey|key)=([^&\s]+)"
)
_BEARER = re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+")
_URL_CREDENTIALS = re.compile(r"(?i)([a-z][a-z0-9+.-]*://)[^/@\s:]+:[^/@\s]+@")


def redact_value(value: str) -> str:
    value = _URL_CREDENTIALS.sub(r"\1[REDACTED]@", value)
    value = _BEARER.sub("Bearer [REDACTED]", value)
    return _QUERY_SECRET.sub(lambda m: f"{m.group(1)}={REDACTED}", value)


def redact_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """Contract §10.3: secret-looking keys are replaced; other values have secrets masked."""
    redacted: dict[str, str] = {}
    for key, value in (metadata or {}).items():
        lowered = key.lower()
        if any(marker in lowered for marker in _SECRET_KEYS):
            redacted[key] = REDACTED
        else:
            redacted[key] = redact_value(value)
    return redacted


class AuditRecord(BaseModel):
    """One per terminal invocation (`audit.tool_invocation`). Args and outputs are not audited."""

    event: str = "audit.tool_invocation"
    at: datetime
    session_id: str
    tool: str
    invocation_id: str
    correlation_id: str | None = None
    status: InvocationStatus
    error_code: str | None = None
    duration_ms: int = 0
    actor_id: str
    tenant_id: str
    metadata: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def of(cls, invocation: Invocation, session: Session) -> AuditRecord:
        return cls(
            at=invocation.completed_at or invocation.started_at,
            session_id=invocation.session_id,
            tool=invocation.tool_name,
            invocation_id=invocation.id,
            correlation_id=invocation.correlation_id,
            status=invocation.status,
            error_code=invocation.error.code if invocation.error else None,
            duration_ms=invocation.duration_ms,
            actor_id=session.principal.actor_id,
            tenant_id=session.principal.tenant_id,
            metadata=redact_metadata(session.metadata),
        )


class AuditLog(Observer, Protocol):
    async def read(self, session_id: str, limit: int) -> list[AuditRecord]: ...
