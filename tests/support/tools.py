"""A tool family used only by tests and benchmarks (loaded through `extra_tool_families`):
`test.sleep` and `test.hang` wait in a child process (timeouts, process-group kills, slow-tool
concurrency), `test.env` reports a child process's environment, `test.artifacts` attaches
artifacts (artifact quotas)."""

from __future__ import annotations

from typing import Any

from serve_app.domain.capability import Idempotency, RiskLevel, Scope, SideEffects
from serve_app.domain.errors import ErrorCode
from serve_app.tools.base import (
    ArtifactPayload,
    Tool,
    ToolContext,
    ToolFailed,
    ToolResult,
    define,
)

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
    # In a session of its own, as a daemon would: the timeout must still kill it.
    script = 'setsid sleep "$1" & echo $! > "$2"; wait'
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

ENV = define(
    name="test.env",
    description="Run `env` in the workspace and return its output; test-only.",
    scope=Scope.WORKSPACE,
    risk=RiskLevel.LOW,
    approval=False,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.GUARANTEED,
    timeout=10,
    output_kb=64,
    properties={},
    outputs={"environment": {"type": "object"}},
)


async def _env(ctx: ToolContext, _args: dict[str, Any]) -> ToolResult:
    result = await ctx.run(["env"], cwd=ctx.workspace, timeout=ctx.remaining())
    pairs = (line.split("=", 1) for line in result.output.splitlines() if "=" in line)
    return ToolResult(output={"environment": dict(pairs)}, logs=result.logs)


ARTIFACTS = define(
    name="test.artifacts",
    description="Attach `count` artifacts of `size` bytes each; test-only.",
    scope=Scope.WORKSPACE,
    risk=RiskLevel.LOW,
    approval=False,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.GUARANTEED,
    timeout=10,
    output_kb=64,
    properties={
        "count": {"type": "integer", "minimum": 0, "maximum": 20},
        "size": {"type": "integer", "minimum": 0, "maximum": 65536},
    },
    required=["count", "size"],
    outputs={"attached": {"type": "integer"}},
)


async def _artifacts(_ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    blobs = [
        ArtifactPayload(
            name=f"part-{n}.bin", content_type="application/octet-stream", data=b"a" * args["size"]
        )
        for n in range(args["count"])
    ]
    return ToolResult(output={"attached": len(blobs)}, artifacts=blobs)


CONNECT = define(
    name="test.connect",
    description="Open a TCP connection to 127.0.0.1:`port` from a child process; test-only.",
    scope=Scope.WORKSPACE,
    risk=RiskLevel.LOW,
    approval=False,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.GUARANTEED,
    timeout=15,
    output_kb=64,
    properties={"port": {"type": "integer", "minimum": 1, "maximum": 65535}},
    required=["port"],
    outputs={"connected": {"type": "boolean"}, "output": {"type": "string"}},
)
CONNECT_NETWORK = CONNECT.model_copy(
    update={
        "name": "test.connect_network",
        "description": "Like test.connect, declared as a network tool.",
        "constraints": CONNECT.constraints.model_copy(update={"network": True}),
        "observability": CONNECT.observability.model_copy(
            update={"span_name": "test.connect_network"}
        ),
    }
)
_CONNECT_SCRIPT = (
    "import socket, sys\n"
    "socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=3).close()\n"
    "print('connected')\n"
)


async def _connect(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    result = await ctx.run(
        ["python3", "-c", _CONNECT_SCRIPT, str(args["port"])], timeout=ctx.remaining()
    )
    connected = result.exit_code == 0 and "connected" in result.output
    return ToolResult(output={"connected": connected, "output": result.output})


TOOLS = [
    Tool(SLEEP, _sleep),
    Tool(HANG, _sleep),
    Tool(ENV, _env),
    Tool(ARTIFACTS, _artifacts),
    Tool(CONNECT, _connect),
    Tool(CONNECT_NETWORK, _connect),
]
