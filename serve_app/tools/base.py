"""What a tool is: its capability next to its handler, and what a handler receives and returns."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Generic

from pydantic import BaseModel, ValidationError
from typing_extensions import TypeVar

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
from serve_app.domain.errors import ErrorCode, ServiceError, invalid_argument
from serve_app.domain.models import LogLine, Session
from serve_app.domain.paths import WorkspacePath
from serve_app.runtime.interface import CommandResult, WorkspaceRuntime

T = TypeVar("T")
OutputT = TypeVar("OutputT", default=Any)


@dataclass(frozen=True)
class ArtifactPayload:
    name: str
    content_type: str
    data: bytes


@dataclass
class ToolResult(Generic[OutputT]):
    output: OutputT | None = None
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
    output_limit: int = 256 * 1024
    """The tool's output limit in bytes (its capability's `output_limit_kb`): the executor fails
    a larger output."""

    @property
    def workspace(self) -> PurePosixPath:
        return self.runtime.workspace

    @property
    def command_output_limit(self) -> int:
        """How much of a command's output a tool keeps by default: three quarters of its output
        limit, leaving room for the other fields and JSON escaping."""
        return self.output_limit * 3 // 4

    async def run(
        self,
        argv: Sequence[str],
        *,
        cwd: PurePosixPath | str | None = None,
        timeout: float | None = None,
        stdin: bytes | None = None,
        output_limit: int | None = None,
        env: Mapping[str, str] | None = None,
        network: bool | None = None,
    ) -> CommandResult:
        """A command in the session's sandbox (`runtime.run`), by default in the workspace, until
        the tool's deadline, keeping `command_output_limit` bytes of its output."""
        return await self.runtime.run(
            argv,
            cwd=self.workspace if cwd is None else cwd,
            timeout=self.remaining() if timeout is None else timeout,
            stdin=stdin,
            output_limit=self.command_output_limit if output_limit is None else output_limit,
            env=env,
            network=network,
        )

    async def path(self, user_path: str, *, follow_final: bool = True) -> WorkspacePath:
        return await self.runtime.resolve(user_path, follow_final=follow_final)

    def remaining(self) -> float:
        return max(self.deadline - time.monotonic(), 0.0)


Handler = Callable[[ToolContext, Any], Awaitable[ToolResult]]


def blocking(function: Callable[[ToolContext, dict[str, Any]], ToolResult]) -> Handler:
    """A handler for a synchronous tool body, run on the executor's thread pool."""

    async def handler(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
        result: ToolResult = await ctx.blocking(lambda: function(ctx, args))
        return result

    return handler


@dataclass(frozen=True)
class Tool:
    """A capability and its handler; `arguments` is the model the raw arguments are parsed into
    before the handler sees them (None only for handlers that still take a raw dict)."""

    capability: Capability
    handler: Handler
    arguments: type[BaseModel] | None = None

    @property
    def name(self) -> str:
        return self.capability.name

    async def __call__(self, ctx: ToolContext, raw: Any) -> ToolResult:
        if self.arguments is None:
            return await self.handler(ctx, {} if raw is None else raw)
        try:
            args = self.arguments.model_validate({} if raw is None else raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "args"
            raise invalid_argument(f"invalid {self.name} args: {where}: {first['msg']}") from None
        return await self.handler(ctx, args)


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
