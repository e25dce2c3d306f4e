"""gpu.* — what the executor replica running the call can see of the node's GPUs.

Ray pins a replica to its GPUs through `CUDA_VISIBLE_DEVICES` (a CPU-only replica sets it to "");
the workspace runtime hands that value (`visible_devices`) to every command it runs, so the value
reported here is the one every tool run by this replica sees. `nvidia-smi` lists the devices of
the container, whatever the pinning, so each device also says whether the pinning lets CUDA use
it; `device_nodes` are the `/dev/nvidia*` nodes a sandboxed command actually sees.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from pydantic import Field

from serve_app.domain.capability import Idempotency, RiskLevel, Scope, SideEffects
from serve_app.domain.errors import ErrorCode
from serve_app.tools.base import Tool, ToolContext, ToolFailed, ToolResult
from serve_app.tools.declare import Arguments, Output, tool

NVIDIA_SMI_QUERY = [
    "nvidia-smi",
    "--query-gpu=index,name,memory.total,uuid",
    "--format=csv,noheader",
]
# A constant command: the names in the sandbox's /dev (never a user value).
LIST_DEV = ["ls", "-1", "/dev"]
LIST_DEV_ENV = {"PATH": "/usr/bin:/bin"}
REASON_MAX_CHARS = 300


class InfoArgs(Arguments):
    """gpu.info takes no arguments."""


class Device(Output):
    index: int
    name: str
    memory_total: str
    uuid: str
    visible: bool


class InfoOutput(Output):
    cuda_visible_devices: Annotated[
        str | None,
        Field(
            description="The replica's CUDA_VISIBLE_DEVICES: null when unset (all devices), "
            '"" when the replica holds no GPU',
            # The catalog keeps the null: it means "unset", not "absent".
            json_schema_extra={"type": ["string", "null"]},
        ),
    ]
    devices: Annotated[
        list[Device],
        Field(
            description="index, name, memory_total, uuid and visible (usable under the "
            "replica's CUDA_VISIBLE_DEVICES) of each device nvidia-smi lists"
        ),
    ]
    device_nodes: Annotated[
        list[str],
        Field(description="The /dev/nvidia* nodes a command in the workspace sandbox sees"),
    ]
    reason: Annotated[
        str | None, Field(description="Why the device list is empty (only then present)")
    ] = None


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


def parse_device_nodes(listing: str) -> list[str]:
    """The `/dev/nvidia*` entries of an `ls -1 /dev` listing, sorted."""
    names = {line.strip() for line in listing.splitlines()}
    return sorted(f"/dev/{name}" for name in names if name.startswith("nvidia") and "/" not in name)


def _first_line(text: str) -> str:
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return line[:REASON_MAX_CHARS]


async def _device_nodes(ctx: ToolContext) -> list[str]:
    listed = await ctx.run(LIST_DEV, env=LIST_DEV_ENV)
    if listed.timed_out or listed.exit_code != 0:
        return []
    return parse_device_nodes(listed.output)


@tool(
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
    examples=[{}],
)
async def info(ctx: ToolContext, args: InfoArgs) -> ToolResult[InfoOutput]:  # noqa: ARG001
    pinned = ctx.runtime.visible_devices
    result, nodes = await asyncio.gather(ctx.run(NVIDIA_SMI_QUERY), _device_nodes(ctx))
    output = InfoOutput(cuda_visible_devices=pinned, devices=[], device_nodes=nodes)
    if result.timed_out:
        raise ToolFailed(
            ErrorCode.TIMEOUT,
            "nvidia-smi did not answer in time",
            exit_code=124,
            output=output,
            logs=result.logs,
        )
    if result.exit_code == -1:
        output.reason = f"nvidia-smi is not available here ({_first_line(result.output)})"
    elif result.exit_code != 0:
        output.reason = (
            f"nvidia-smi exited {result.exit_code}: {_first_line(result.output) or 'no output'}"
        )
    else:
        output.devices = [
            Device(**device, visible=_visible(device, pinned))
            for device in parse_devices(result.output)
        ]
        if not output.devices:
            output.reason = "nvidia-smi listed no devices"
    return ToolResult(output=output, logs=result.logs)


TOOLS: list[Tool] = [info]
