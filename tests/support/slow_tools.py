"""A tool family used only by tests and benchmarks: `test.sleep` and `test.hang` wait in a
child process, so they exercise timeouts, process-group kills and slow-tool concurrency with
a real process."""

from __future__ import annotations

from typing import Any

from serve_app.domain.capability import Idempotency, RiskLevel, Scope, SideEffects
from serve_app.domain.errors import ErrorCode
from serve_app.tools.base import Tool, ToolContext, ToolFailed, ToolResult, define

SLEEP = define(
    name="test.sleep",
    description="Sleep in a child process (and its own child) for `seconds`; test-only.",
    scope=Scope.WORKSPACE,
    risk=RiskLevel.LOW,
    approval=False,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.GUARANTEED,
    timeout=30,
    output_kb=64,
    properties={
        "seconds": {"type": "number", "minimum": 0, "maximum": 60},
        "pid_file": {"type": "string"},
    },
    required=["seconds"],
    outputs={"slept": {"type": "number"}},
)


async def _sleep(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    seconds = float(args["seconds"])
    script = 'sleep "$1" & echo $! > "$2"; wait'
    pid_file = args.get("pid_file", "/dev/null")
    result = await ctx.run(
        ["sh", "-c", script, "sh", str(seconds), pid_file],
        cwd=ctx.workspace,
        timeout=ctx.remaining() + 5,
    )
    if result.exit_code != 0:
        raise ToolFailed(ErrorCode.EXECUTION_FAILED, "sleep failed", exit_code=result.exit_code)
    return ToolResult(output={"slept": seconds}, logs=result.logs)


HANG = SLEEP.model_copy(
    update={
        "name": "test.hang",
        "description": "Like test.sleep with a 1 s timeout, to exercise the timeout path.",
        "constraints": SLEEP.constraints.model_copy(update={"timeout_seconds": 1}),
        "observability": SLEEP.observability.model_copy(update={"span_name": "test.hang"}),
    }
)

TOOLS = [Tool(SLEEP, _sleep), Tool(HANG, _sleep)]
