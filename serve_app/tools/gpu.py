"""gpu.* — what the executor replica running the call can see of the node's GPUs.

Ray pins a replica to its GPUs through `CUDA_VISIBLE_DEVICES` (a CPU-only replica sets it to "");
child processes inherit that variable, so the value reported here is the one every tool run by
this replica sees. `nvidia-smi` lists the devices of the container, whatever the pinning, so each
device also says whether the pinning lets CUDA use it.
"""

from __future__ import annotations

import os
from typing import Any

from serve_app.domain.capability import Idempotency, RiskLevel, Scope, SideEffects
from serve_app.domain.errors import ErrorCode
from serve_app.tools.base import Tool, ToolContext, ToolFailed, ToolResult, define

NVIDIA_SMI_QUERY = [
    "nvidia-smi",
    "--query-gpu=index,name,memory.total,uuid",
    "--format=csv,noheader",
]
OUTPUT_LIMIT = 64 * 1024
REASON_MAX_CHARS = 300

INFO = define(
    name="gpu.info",
    description="Report the GPUs visible to the executor replica that runs the call "
    "(CUDA_VISIBLE_DEVICES and the devices nvidia-smi lists).",
    scope=Scope.WORKSPACE,
    risk=RiskLevel.LOW,
    approval=False,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.GUARANTEED,
    timeout=15,
    output_kb=64,
    properties={},
    outputs={
        "cuda_visible_devices": {
            "type": ["string", "null"],
            "description": "The replica's CUDA_VISIBLE_DEVICES: null when unset (all devices), "
            '"" when the replica holds no GPU',
        },
        "devices": {
            "type": "array",
            "description": "index, name, memory_total, uuid and visible (usable under the "
            "replica's CUDA_VISIBLE_DEVICES) of each device nvidia-smi lists",
        },
        "reason": {
            "type": "string",
            "description": "Why the device list is empty (only then present)",
        },
    },
)


def _visible(device: dict[str, Any], pinned: str | None) -> bool:
    """Whether CUDA in this replica may use `device` under `CUDA_VISIBLE_DEVICES=pinned`."""
    if pinned is None:
        return True
    wanted = {item.strip() for item in pinned.split(",") if item.strip()}
    return str(device["index"]) in wanted or any(
        device["uuid"].startswith(item) for item in wanted if item.startswith(("GPU-", "MIG-"))
    )


def parse_devices(text: str) -> list[dict[str, Any]]:
    """Rows of `nvidia-smi --query-gpu=index,name,memory.total,uuid --format=csv,noheader`."""
    devices: list[dict[str, Any]] = []
    for line in text.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) < 4 or not fields[0].isdigit():
            continue
        devices.append(
            {
                "index": int(fields[0]),
                # A name may itself hold commas; the last two fields are memory and uuid.
                "name": ", ".join(fields[1:-2]),
                "memory_total": fields[-2],
                "uuid": fields[-1],
            }
        )
    return devices


def _first_line(text: str) -> str:
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return line[:REASON_MAX_CHARS]


async def _info(ctx: ToolContext, _args: dict[str, Any]) -> ToolResult:
    pinned = os.environ.get("CUDA_VISIBLE_DEVICES")
    result = await ctx.run(
        NVIDIA_SMI_QUERY, cwd=ctx.workspace, timeout=ctx.remaining(), output_limit=OUTPUT_LIMIT
    )
    if result.timed_out:
        raise ToolFailed(
            ErrorCode.TIMEOUT,
            "nvidia-smi did not answer in time",
            exit_code=124,
            output={"cuda_visible_devices": pinned, "devices": []},
            logs=result.logs,
        )
    output: dict[str, Any] = {"cuda_visible_devices": pinned, "devices": []}
    if result.exit_code == -1:
        output["reason"] = f"nvidia-smi is not available here ({_first_line(result.output)})"
    elif result.exit_code != 0:
        output["reason"] = (
            f"nvidia-smi exited {result.exit_code}: {_first_line(result.output) or 'no output'}"
        )
    else:
        devices = parse_devices(result.output)
        for device in devices:
            device["visible"] = _visible(device, pinned)
        output["devices"] = devices
        if not devices:
            output["reason"] = "nvidia-smi listed no devices"
    return ToolResult(output=output, logs=result.logs)


TOOLS: list[Tool] = [Tool(INFO, _info)]
