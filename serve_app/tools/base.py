"""What a tool is: its capability next to its handler, and what a handler receives and returns."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, TypeVar

from serve_app.domain.capability import (
    ArgField,
    Capability,
    Constraints,
    CostHint,
    Idempotency,
    Observability,
    PathField,
    PolicyMetadata,
    RiskLevel,
    Scope,
    SideEffects,
)
from serve_app.domain.errors import ErrorCode, ServiceError
from serve_app.domain.models import LogLine, Session
from serve_app.domain.paths import WorkspacePath
from serve_app.runtime.interface import CommandRunner, WorkspaceRuntime

T = TypeVar("T")


@dataclass(frozen=True)
class ArtifactPayload:
    name: str
    content_type: str
    data: bytes


@dataclass
class ToolResult:
    output: Any = None
    logs: list[LogLine] = field(default_factory=list)
    exit_code: int = 0
    artifacts: list[ArtifactPayload] = field(default_factory=list)


class ToolFailed(ServiceError):
    """A handler failure that still reports what the tool printed and its exit code."""

    def __init__(
        self,
        code: ErrorCode | str,
        message: str,
        *,
        exit_code: int = 1,
        output: Any = None,
        logs: list[LogLine] | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(code, message, retryable)
        self.exit_code = exit_code
        self.output = output
        self.logs = logs or []


@dataclass(frozen=True)
class ToolContext:
    session: Session
    invocation_id: str
    deadline: float
    runtime: WorkspaceRuntime
    blocking: Callable[[Callable[[], Any]], Awaitable[Any]]
    """Runs CPU-bound work (parsing, hashing) off the event loop; never workspace I/O."""

    @property
    def workspace(self) -> PurePosixPath:
        return self.runtime.workspace

    @property
    def run(self) -> CommandRunner:
        """`runtime.run`: a command in the session's sandbox."""
        return self.runtime.run

    async def path(self, user_path: str, *, follow_final: bool = True) -> WorkspacePath:
        return await self.runtime.resolve(user_path, follow_final=follow_final)

    def remaining(self) -> float:
        return max(self.deadline - time.monotonic(), 0.0)


Handler = Callable[[ToolContext, dict[str, Any]], Awaitable[ToolResult]]


def blocking(function: Callable[[ToolContext, dict[str, Any]], ToolResult]) -> Handler:
    """A handler for a synchronous tool body, run on the executor's thread pool."""

    async def handler(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
        result: ToolResult = await ctx.blocking(lambda: function(ctx, args))
        return result

    return handler


@dataclass(frozen=True)
class Tool:
    capability: Capability
    handler: Handler

    @property
    def name(self) -> str:
        return self.capability.name


def define(
    *,
    name: str,
    description: str,
    scope: Scope,
    risk: RiskLevel,
    approval: bool,
    side_effects: SideEffects,
    idempotency: Idempotency,
    timeout: int,
    output_kb: int,
    network: bool = False,
    properties: dict[str, Any],
    required: Sequence[str] = (),
    outputs: dict[str, Any],
    path_fields: Sequence[PathField] = (),
    arg_fields: Sequence[ArgField] = (),
    cost: CostHint = CostHint.LOW,
    preconditions: Sequence[str] = (),
    postconditions: Sequence[str] = (),
    examples: Sequence[dict[str, Any]] = (),
    aliases: Sequence[str] = (),
) -> Capability:
    """Build a capability with the catalog's conventions (object schemas, observability names)."""
    return Capability(
        name=name,
        description=description,
        input_schema={
            "type": "object",
            "properties": properties,
            "required": list(required),
        },
        output_schema={"type": "object", "properties": outputs},
        scope=scope,
        side_effects=side_effects,
        risk_level=risk,
        requires_approval=approval,
        idempotency=idempotency,
        constraints=Constraints(
            timeout_seconds=timeout, max_retries=0, output_limit_kb=output_kb, network=network
        ),
        preconditions=list(preconditions),
        postconditions=list(postconditions),
        cost_hint=cost,
        policy=PolicyMetadata(path_fields=list(path_fields), arg_fields=list(arg_fields)),
        observability=Observability(span_name=name),
        examples=list(examples),
        aliases=list(aliases),
    )
