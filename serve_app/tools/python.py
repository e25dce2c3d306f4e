"""python.* — venv installs, compile checks and pytest (contract §4.2), and the Python commands
behind repo.* (§4.3).

The interpreter is the workspace's own `.venv/bin/python` when the workspace has a `.venv`
(python.install_deps creates it), else `python3` from the service's PATH — never the service's
own interpreter. pytest runs as `<python> -m pytest`, so the workspace root is importable.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field

from serve_app.domain.capability import Idempotency, PathField, RiskLevel, SideEffects
from serve_app.domain.errors import ErrorCode, invalid_argument
from serve_app.domain.paths import within_allowed
from serve_app.tools import projects, toolchain_output
from serve_app.tools.base import Tool, ToolContext, ToolFailed, ToolResult
from serve_app.tools.declare import Arguments, bounded
from serve_app.tools.languages import (
    DIST_DIR,
    Command,
    CommandOutput,
    Completed,
    Coverage,
    FlagRules,
    Job,
    LanguageOutput,
    LanguageTestOutput,
    Packaged,
    ProjectCommands,
    combined,
    failures,
    output_dir,
    ran,
    relative_arg,
    reported,
    run_toolchain,
    target_path,
    toolchain_tool,
)

VENV_DIR = ".venv"
ENV = {"PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONUNBUFFERED": "1"}
# compileall skips what is not the project's own code.
COMPILE_EXCLUDE = r"(^|/)(\.venv|\.git|node_modules|\.workspace-build|\.workspace-dist)(/|$)"
BUILD_FLAGS = FlagRules(exact=frozenset({"-q"}))
TEST_FLAGS = FlagRules(
    exact=frozenset({"-q", "-v", "-x", "-s", "-l", "--disable-warnings", "--no-header"}),
    valued=frozenset({"-k", "-m"}),
    prefixes=("--maxfail=", "--tb="),
    positional="path",
)
RUN_PATTERN_MAX = 256
_BUILT_WHEEL = re.compile(r"filename=(?P<name>[^\s/]+\.whl)")


VENV_PYTHON = f"{VENV_DIR}/bin/python"


async def venv_python(ctx: ToolContext) -> str | None:
    """The workspace venv's python, checked through the jail (`.venv/bin` must be a real
    directory inside the workspace; the interpreter itself is a symlink out of it), or None
    when there is none the session may use."""
    if not within_allowed(VENV_PYTHON, ctx.session.allowed_paths):
        return None
    python = await ctx.path(VENV_PYTHON, follow_final=False)
    info = await ctx.runtime.stat(python)
    return str(python.real) if info is not None and info.kind in ("file", "symlink") else None


async def interpreter(ctx: ToolContext) -> str:
    """The workspace venv's python, else `python3` from PATH."""
    return await venv_python(ctx) or "python3"


async def python_command(
    ctx: ToolContext, *args: str, env: dict[str, str] | None = None
) -> Command:
    return Command([await interpreter(ctx), *args], "python", ENV | (env or {}))


def ensure_pytest(run: Completed) -> Completed:
    """pytest missing from the interpreter is a missing toolchain, not a failing test run."""
    if run.exit_code != 0 and "No module named pytest" in run.output:
        raise ToolFailed(
            ErrorCode.EXECUTION_FAILED,
            f"pytest is not installed for {run.command[0]} (add it to the requirements and run "
            "python.install_deps)",
            exit_code=127,
            output=CommandOutput(command=run.command, exit_code=127, output=run.output),
            logs=run.logs,
        )
    return run


async def _target_arg(ctx: ToolContext, value: str | None) -> str:
    path = await target_path(ctx, value)
    return relative_arg(path) if path is not None else "."


async def compile_check(
    ctx: ToolContext, target: str | None, output_kb: int | None = None
) -> Completed:
    """`compileall` with byte-code written to a private directory: the workspace is unchanged."""
    target_arg = await _target_arg(ctx, target)
    async with ctx.runtime.temp_dir("pycache-") as cache:
        command = await python_command(
            ctx,
            "-m",
            "compileall",
            "-q",
            "-x",
            COMPILE_EXCLUDE,
            target_arg,
            env={"PYTHONPYCACHEPREFIX": str(cache)},
        )
        return await run_toolchain(ctx, command, output_kb=output_kb)


async def _has_module(ctx: ToolContext, module: str) -> bool:
    command = await python_command(ctx, "-c", f"import {module}")
    run = await run_toolchain(ctx, command, output_kb=16)
    return run.exit_code == 0


async def _pytest(ctx: ToolContext, *args: str) -> Command:
    return await python_command(ctx, "-m", "pytest", *args)


# repo.* commands --------------------------------------------------------------------------------


async def _build(job: Job) -> Completed:
    command = await python_command(
        job.ctx,
        "-m",
        "compileall",
        *job.extra_args,
        "-x",
        COMPILE_EXCLUDE,
        await _target_arg(job.ctx, job.target),
    )
    return await job.run(command)


async def _test_target(job: Job) -> list[str]:
    path = await target_path(job.ctx, job.target)
    return [relative_arg(path)] if path is not None else []


async def _test(job: Job) -> Completed:
    command = await _pytest(job.ctx, "-q", *await _test_target(job), *job.extra_args)
    return ensure_pytest(await job.run(command))


async def _validate(job: Job) -> Completed:
    return await compile_check(job.ctx, job.target, job.output_kb)


async def _static_analysis(job: Job) -> Completed:
    """ruff when it is on PATH, else pyflakes when the interpreter has it, else a compile check."""
    target = await _target_arg(job.ctx, job.target)
    if await job.ctx.runtime.which("ruff"):
        ruff = Command(["ruff", "check", "--no-cache", "--output-format=concise", target], "ruff")
        return await job.run(ruff)
    if await _has_module(job.ctx, "pyflakes"):
        return await job.run(await python_command(job.ctx, "-m", "pyflakes", target))
    return await compile_check(job.ctx, job.target, job.output_kb)


async def _coverage(job: Job) -> Coverage:
    if not await _has_module(job.ctx, "pytest_cov"):
        return Coverage(await _test(job), supported=False)
    command = await _pytest(job.ctx, "-q", "--cov=.", "--cov-report=term", *await _test_target(job))
    run = ensure_pytest(await job.run(command))
    return Coverage(run, supported=True, percent=toolchain_output.pytest_coverage(run.output))


async def _package(job: Job) -> Packaged:
    """A wheel of the project (`pip wheel --no-deps`, pip's isolated build with the project's
    declared build requirements)."""
    dist = await output_dir(job.ctx, DIST_DIR)
    command = await python_command(
        job.ctx,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "-w",
        dist.relative,
        await _target_arg(job.ctx, job.target),
    )
    run = await job.run(command)
    built = _BUILT_WHEEL.search(run.output)
    return Packaged(run, f"{dist.relative}/{built['name']}" if built else dist.relative)


COMMANDS = ProjectCommands(
    build_flags=BUILD_FLAGS,
    test_flags=TEST_FLAGS,
    build=_build,
    test=_test,
    validate=_validate,
    static_analysis=_static_analysis,
    coverage=_coverage,
    package=_package,
)


# python.* tools ---------------------------------------------------------------------------------


class InstallDepsArgs(Arguments):
    use_venv: Annotated[bool, Field(description="Must be true (default)")] = True
    requirements_file: Annotated[str | None, Field(description="Default requirements.txt")] = None
    constraints_file: str | None = None


class InstallDepsOutput(LanguageOutput):
    venv_path: str
    requirements_file: str | None = None  # absent when creating the venv failed


async def _existing_file(ctx: ToolContext, value: str, name: str) -> str:
    path = await target_path(ctx, value, name)
    info = None if path is None else await ctx.runtime.stat(path)
    if path is None or info is None or info.kind != "file":
        raise invalid_argument(f"{name} not found: {value}")
    return relative_arg(path)


@toolchain_tool(
    "python.install_deps",
    f"Install Python dependencies in an isolated venv ({VENV_DIR} in the workspace, created with "
    "python3 -m venv; then pip install -r requirements_file [-c constraints_file]). Without a "
    "requirements file nothing is installed.",
    risk=RiskLevel.MEDIUM,
    side_effects=SideEffects.REVERSIBLE,
    idempotency=Idempotency.BEST_EFFORT,
    timeout=300,
    output_kb=2048,
    network=True,
    path_fields=[PathField(field="requirements_file"), PathField(field="constraints_file")],
    examples=[{"requirements_file": "requirements.txt"}],
)
async def install_deps(ctx: ToolContext, args: InstallDepsArgs) -> ToolResult[InstallDepsOutput]:
    if not args.use_venv:
        raise invalid_argument("python.install_deps requires use_venv=true")
    requested = args.requirements_file or ""
    if not requested and await projects.root_file(ctx.runtime, "requirements.txt") is not None:
        requested = "requirements.txt"
    constraints = args.constraints_file or ""
    requirements = await _existing_file(ctx, requested, "requirements_file") if requested else ""
    pinned = await _existing_file(ctx, constraints, "constraints_file") if constraints else ""
    if not requirements:
        note = "no requirements file found; nothing installed"
        nothing = InstallDepsOutput(
            exit_code=0,
            compiled_binary_path="",
            coverage_percent=None,
            diagnostics=[note],
            command=[],
            output=note,
            venv_path="",
            requirements_file="",
        )
        return ToolResult(output=nothing)
    await ctx.path(VENV_DIR)
    created: Completed | None = None
    if await venv_python(ctx) is None:
        created = await run_toolchain(
            ctx, Command(["python3", "-m", "venv", VENV_DIR], "python", ENV), output_kb=256
        )
        if created.exit_code != 0:
            failed = InstallDepsOutput(**ran(ctx, created), venv_path=VENV_DIR)
            return reported(ctx, created, failed)
    pip = ["-m", "pip", "install", "-r", requirements] + (["-c", pinned] if pinned else [])
    run = await run_toolchain(ctx, await python_command(ctx, *pip))
    if created is not None:
        run = combined(created, run)
    installed = InstallDepsOutput(
        **ran(ctx, run), venv_path=VENV_DIR, requirements_file=requirements
    )
    return reported(ctx, run, installed)


class ValidateArgs(Arguments):
    target: Annotated[str | None, Field(description="File or directory (default .)")] = None


@toolchain_tool(
    "python.validate",
    "Validate Python syntax/bytecode compilation (byte-code goes to a scratch directory, not "
    "the workspace).",
    risk=RiskLevel.LOW,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.GUARANTEED,
    timeout=180,
    output_kb=1024,
    path_fields=[PathField(field="target")],
    examples=[{"target": "."}],
)
async def validate(ctx: ToolContext, args: ValidateArgs) -> ToolResult[LanguageOutput]:
    run = await compile_check(ctx, args.target)
    return reported(ctx, run, LanguageOutput(**ran(ctx, run)))


class TestArgs(Arguments):
    target: Annotated[str | None, Field(description="Test file or directory")] = None
    run_pattern: Annotated[str, Field(max_length=RUN_PATTERN_MAX)] = ""
    max_fail: Annotated[int, bounded(1, 20)] = 1


@toolchain_tool(
    "python.test",
    "Run Python tests with constrained pytest options (`-q --maxfail max_fail [target] "
    "[-k run_pattern]`, max_fail default 1).",
    risk=RiskLevel.MEDIUM,
    side_effects=SideEffects.REVERSIBLE,
    idempotency=Idempotency.BEST_EFFORT,
    timeout=300,
    output_kb=2048,
    path_fields=[PathField(field="target")],
    examples=[{"target": "tests", "run_pattern": "add", "max_fail": 5}],
)
async def test(ctx: ToolContext, args: TestArgs) -> ToolResult[LanguageTestOutput]:
    pattern = args.run_pattern.strip()
    if any(c in pattern for c in "\x00\n\r"):
        raise invalid_argument("run_pattern must be a single line")
    argv = ["-q", f"--maxfail={args.max_fail}"]
    path = await target_path(ctx, args.target)
    if path is not None:
        argv.append(relative_arg(path))
    if pattern:
        argv += ["-k", pattern]
    run = ensure_pytest(await run_toolchain(ctx, await _pytest(ctx, *argv)))
    return reported(ctx, run, LanguageTestOutput(**ran(ctx, run), **failures(run)))


TOOLS: list[Tool] = [install_deps, validate, test]
