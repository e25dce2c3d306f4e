"""repo.* build and test dispatch: the detected project's commands behind repo.validate,
repo.build, repo.test / repo.run_tests, repo.static_analysis, repo.coverage_report and
repo.package.

Each project type brings its commands (`ProjectCommands` in go.py, rust.py, node.py, python.py,
c.py and java.py); `project_job` picks them for the detected project (`projects.detect`) and
checks the target and extra args against that project type's allowlist. Outcome rule for every
tool that runs a toolchain: see `languages.OUTCOME_RULE`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Literal, TypedDict, TypeVar

from pydantic import Field

from serve_app.domain.capability import (
    ArgField,
    CostHint,
    Idempotency,
    RiskLevel,
    Scope,
    SideEffects,
)
from serve_app.domain.errors import ErrorCode
from serve_app.tools import c, declare, go, java, node, projects, python, rust, toolchain_output
from serve_app.tools.base import Tool, ToolContext, ToolFailed, ToolResult
from serve_app.tools.declare import Arguments, Metadata, Output, tool
from serve_app.tools.fitting import fit_command_result
from serve_app.tools.languages import (
    MAX_DIAGNOSTICS,
    OUTCOME_NOTE,
    Completed,
    ExtraArgs,
    FailedTest,
    Job,
    ProjectCommands,
    checked_extra_args,
    checked_target,
    extra_args_policy,
    failures,
)

NO_PROJECT = (
    "no supported project found (expected go.mod, Cargo.toml, package.json, pyproject.toml/"
    "pytest.ini/requirements.txt, pom.xml/mvnw, build.gradle/gradlew, CMakeLists.txt or *.c)"
)

COMMANDS: dict[str, ProjectCommands] = {
    "go": go.COMMANDS,
    "rust": rust.COMMANDS,
    "node": node.COMMANDS,
    "python": python.COMMANDS,
    "c": c.COMMANDS,
    "java/maven": java.MAVEN,
    "java/gradle": java.GRADLE,
}


# declaring a repo.* tool that runs the toolchain ------------------------------------------------


def repo_metadata(
    name: str,
    description: str,
    *,
    risk: RiskLevel,
    side_effects: SideEffects,
    idempotency: Idempotency,
    timeout: int,
    output_kb: int,
    cost: CostHint,
    network: bool = False,
    arg_fields: Sequence[ArgField] = (),
    examples: Sequence[Mapping[str, object]] = (),
) -> Metadata:
    """The metadata of a repo.* tool that runs the project's toolchain: repo scope, no approval,
    the outcome rule in its description."""
    return Metadata(
        name=name,
        description=f"{description} {OUTCOME_NOTE}",
        scope=Scope.REPO,
        risk=risk,
        approval=False,
        side_effects=side_effects,
        idempotency=idempotency,
        timeout=timeout,
        output_kb=output_kb,
        network=network,
        cost=cost,
        arg_fields=arg_fields,
        examples=[dict(example) for example in examples],
    )


Target = Annotated[str, Field(description="Package, path or test selector for the toolchain")]


class TargetArgs(Arguments):
    target: Target = ""


class FlagsArgs(TargetArgs):
    extra_args: ExtraArgs = []


# the detected project's job ---------------------------------------------------------------------


async def project_job(
    ctx: ToolContext,
    target: str,
    extra_args: Sequence[str] = (),
    mode: Literal["build", "test"] | None = None,
) -> tuple[Job, ProjectCommands]:
    """The detected project's commands and a job with its checked target and extra args (`mode`
    picks the build or test allowlist; None: the tool takes no extra args)."""
    project = await projects.detect(ctx.runtime)
    if not project.known:
        raise ToolFailed(ErrorCode.EXECUTION_FAILED, NO_PROJECT, exit_code=1)
    commands = COMMANDS[f"java/{project.flavor}" if project.name == "java" else project.name]
    extra: list[str] = []
    if mode is not None:
        rules = commands.build_flags if mode == "build" else commands.test_flags
        extra = await checked_extra_args(ctx, extra_args, rules, f"{project.name} {mode}")
    return Job(ctx, project, checked_target(target), extra), commands


# outputs ----------------------------------------------------------------------------------------


class CommandRunOutput(Output):
    """What a repo.* tool that ran the project's toolchain reports."""

    project_type: str
    command: list[str]
    exit_code: int
    output: str


class RunOutput(CommandRunOutput):
    diagnostics: list[str]


class ValidateOutput(RunOutput):
    language: str
    build_system: str
    test_framework: str


class TestsOutput(RunOutput):
    """A test run: `failed_count` counts every failure found (at most 200), also those
    `failed_tests` leaves out to stay within the output limit."""

    failed_count: int
    failed_tests: list[FailedTest]


class CoverageOutput(CommandRunOutput):
    coverage_supported: bool
    coverage_percent: float | None


class PackageOutput(CommandRunOutput):
    artifact_path: str


class Ran(TypedDict):
    """The `RunOutput` fields of a run, for `RunOutput(**ran(...))` and its kin."""

    project_type: str
    command: list[str]
    exit_code: int
    diagnostics: list[str]
    output: str


def ran(job: Job, run: Completed) -> Ran:
    """The project type, the run's command, exit code and output, and the diagnostics in it."""
    return Ran(
        project_type=job.project.name,
        command=run.command,
        exit_code=run.exit_code,
        diagnostics=toolchain_output.diagnostics(run.output, MAX_DIAGNOSTICS, job.root),
        output=run.output,
    )


R = TypeVar("R", bound=CommandRunOutput)


def reported(ctx: ToolContext, run: Completed, output: R) -> ToolResult[R]:
    """A repo.* tool's result: `output` fitted to the tool's output limit, the run's logs and
    exit code."""
    return ToolResult(
        output=fit_command_result(output, ctx.output_limit),
        logs=run.logs,
        exit_code=run.exit_code,
    )


# repo.validate / build / test / run_tests / static_analysis -------------------------------------


@tool(
    **repo_metadata(
        "repo.validate",
        "Run toolchain-aware repository validation (syntax/compile checks).",
        risk=RiskLevel.MEDIUM,
        side_effects=SideEffects.REVERSIBLE,
        idempotency=Idempotency.BEST_EFFORT,
        timeout=180,
        output_kb=2048,
        cost=CostHint.MEDIUM,
        examples=[{"target": "./..."}],
    )
)
async def validate(ctx: ToolContext, args: TargetArgs) -> ToolResult[ValidateOutput]:
    job, commands = await project_job(ctx, args.target)
    run = await commands.validate(job)
    toolchain = await projects.toolchain(ctx.runtime, job.project)
    output = ValidateOutput(
        **ran(job, run),
        language=toolchain.language,
        build_system=toolchain.build_system,
        test_framework=toolchain.test_framework,
    )
    return reported(ctx, run, output)


@tool(
    **repo_metadata(
        "repo.build",
        "Execute project build command with repository-aware defaults.",
        risk=RiskLevel.MEDIUM,
        side_effects=SideEffects.REVERSIBLE,
        idempotency=Idempotency.BEST_EFFORT,
        timeout=240,
        output_kb=2048,
        cost=CostHint.HIGH,
        network=True,
        arg_fields=[extra_args_policy("build")],
        examples=[{"target": "./..."}],
    )
)
async def build(ctx: ToolContext, args: FlagsArgs) -> ToolResult[RunOutput]:
    job, commands = await project_job(ctx, args.target, args.extra_args, "build")
    run = await commands.build(job)
    return reported(ctx, run, RunOutput(**ran(job, run)))


async def _test(ctx: ToolContext, args: FlagsArgs) -> ToolResult[TestsOutput]:
    job, commands = await project_job(ctx, args.target, args.extra_args, "test")
    run = await commands.test(job)
    return reported(ctx, run, TestsOutput(**ran(job, run), **failures(run)))


def _test_tool(name: str, description: str) -> Tool:
    return declare.build(
        _test,
        arguments=FlagsArgs,
        output=TestsOutput,
        **repo_metadata(
            name,
            description,
            risk=RiskLevel.MEDIUM,
            side_effects=SideEffects.REVERSIBLE,
            idempotency=Idempotency.BEST_EFFORT,
            timeout=180,
            output_kb=2048,
            cost=CostHint.HIGH,
            arg_fields=[extra_args_policy("test")],
            examples=[{"target": "./..."}],
        ),
    )


test = _test_tool("repo.test", "Execute repository test suite (preferred alias of repo.run_tests).")
run_tests = _test_tool("repo.run_tests", "Execute repository test suite with repo-aware defaults.")


@tool(
    **repo_metadata(
        "repo.static_analysis",
        "Run project-aware static analysis and lint checks (go vet, cargo clippy, npm run lint, "
        "ruff/pyflakes, cc -fsyntax-only with warnings, mvn verify / gradle check).",
        risk=RiskLevel.LOW,
        side_effects=SideEffects.NONE,
        idempotency=Idempotency.BEST_EFFORT,
        timeout=180,
        output_kb=2048,
        cost=CostHint.MEDIUM,
        examples=[{"target": "./..."}],
    )
)
async def static_analysis(ctx: ToolContext, args: TargetArgs) -> ToolResult[RunOutput]:
    job, commands = await project_job(ctx, args.target)
    run = await commands.static_analysis(job)
    return reported(ctx, run, RunOutput(**ran(job, run)))


# repo.coverage_report / repo.package -------------------------------------------------------------


@tool(
    **repo_metadata(
        "repo.coverage_report",
        "Run repository tests and return a normalized coverage report (Go: go test "
        "-coverprofile; Python: pytest-cov when installed; otherwise coverage_supported is "
        "false).",
        risk=RiskLevel.MEDIUM,
        side_effects=SideEffects.REVERSIBLE,
        idempotency=Idempotency.BEST_EFFORT,
        timeout=240,
        output_kb=2048,
        cost=CostHint.HIGH,
        examples=[{"target": "./..."}],
    )
)
async def coverage_report(ctx: ToolContext, args: TargetArgs) -> ToolResult[CoverageOutput]:
    job, commands = await project_job(ctx, args.target)
    coverage = await commands.coverage(job)
    run = coverage.run
    output = CoverageOutput(
        project_type=job.project.name,
        command=run.command,
        coverage_supported=coverage.supported,
        coverage_percent=coverage.percent,
        exit_code=run.exit_code,
        output=run.output,
    )
    return reported(ctx, run, output)


@tool(
    **repo_metadata(
        "repo.package",
        "Package repository output into deployable artifacts (under .workspace-dist/ for Go, "
        "Python wheels, npm tarballs and C; target/ or build/ for cargo and Java).",
        risk=RiskLevel.MEDIUM,
        side_effects=SideEffects.REVERSIBLE,
        idempotency=Idempotency.BEST_EFFORT,
        timeout=300,
        output_kb=2048,
        cost=CostHint.HIGH,
        network=True,
        examples=[{"target": "."}],
    )
)
async def package(ctx: ToolContext, args: TargetArgs) -> ToolResult[PackageOutput]:
    job, commands = await project_job(ctx, args.target)
    packaged = await commands.package(job)
    run = packaged.run
    output = PackageOutput(
        project_type=job.project.name,
        command=run.command,
        artifact_path=packaged.artifact_path if run.exit_code == 0 else "",
        exit_code=run.exit_code,
        output=run.output,
    )
    return reported(ctx, run, output)


TOOLS: list[Tool] = [
    validate,
    build,
    test,
    run_tests,
    coverage_report,
    static_analysis,
    package,
]
