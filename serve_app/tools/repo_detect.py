"""repo.detect_project_type and repo.detect_toolchain: what project the workspace holds and
whether its toolchain is installed, as `projects` detects them (no toolchain runs)."""

from __future__ import annotations

from serve_app.domain.capability import CostHint, Idempotency, RiskLevel, Scope, SideEffects
from serve_app.tools import projects
from serve_app.tools.base import Tool, ToolContext, ToolResult
from serve_app.tools.declare import Arguments, Output, tool


class DetectArgs(Arguments):
    """The detection tools take no arguments."""


class ProjectTypeOutput(Output):
    project_type: str
    flavor: str


@tool(
    name="repo.detect_project_type",
    description="Detect repository project type for build/test orchestration.",
    scope=Scope.REPO,
    risk=RiskLevel.LOW,
    approval=False,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.GUARANTEED,
    timeout=15,
    output_kb=64,
    cost=CostHint.LOW,
    examples=[{}],
)
async def detect_project_type(
    ctx: ToolContext,
    args: DetectArgs,  # noqa: ARG001
) -> ToolResult[ProjectTypeOutput]:
    project = await projects.detect(ctx.runtime)
    return ToolResult(output=ProjectTypeOutput(project_type=project.name, flavor=project.flavor))


class ToolchainOutput(Output):
    language: str
    build_system: str
    test_framework: str
    containerizable: bool
    project_type: str
    flavor: str
    toolchain_command: str
    toolchain_available: bool


@tool(
    name="repo.detect_toolchain",
    description="Detect language toolchain metadata for orchestration (and whether the "
    "toolchain's command is installed).",
    scope=Scope.REPO,
    risk=RiskLevel.LOW,
    approval=False,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.GUARANTEED,
    timeout=20,
    output_kb=64,
    cost=CostHint.LOW,
    examples=[{}],
)
async def detect_toolchain(
    ctx: ToolContext,
    args: DetectArgs,  # noqa: ARG001
) -> ToolResult[ToolchainOutput]:
    markers = await projects.markers(ctx.runtime)
    project = projects.classify(markers)
    if not project.known:
        project = projects.classify(markers, bool(await projects.c_sources(ctx.runtime)))
    toolchain = await projects.toolchain(ctx.runtime, project, markers)
    available = bool(toolchain.command) and await ctx.runtime.which(toolchain.command) is not None
    output = ToolchainOutput(
        language=toolchain.language,
        build_system=toolchain.build_system,
        test_framework=toolchain.test_framework,
        containerizable=projects.containerizable(markers),
        project_type=project.name,
        flavor=project.flavor,
        toolchain_command=toolchain.command,
        toolchain_available=available,
    )
    return ToolResult(output=output)


TOOLS: list[Tool] = [detect_project_type, detect_toolchain]
