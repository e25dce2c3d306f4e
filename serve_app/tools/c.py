"""c.* — compile and run C sources with `cc` (contract §4.2), and the C commands behind repo.*
(§4.3).

Sources are found within three directory levels. A build compiles every non-test source; a test
compiles one test source (`*_test.c`, `*test.c`, `test_*.c`) with the non-test sources except
`main.c`, then runs the binary. Binaries go to `.workspace-build/` (`.workspace-dist/` for
repo.package), never over a source file.
"""

from __future__ import annotations

import re
import typing
from typing import Annotated, Literal

from pydantic import Field

from serve_app.domain.capability import PathField
from serve_app.domain.errors import ErrorCode, invalid_argument
from serve_app.tools import projects
from serve_app.tools.base import Tool, ToolContext, ToolFailed, ToolResult
from serve_app.tools.declare import Arguments
from serve_app.tools.languages import (
    BUILD_DIR,
    DIST_DIR,
    Command,
    Completed,
    Coverage,
    FlagRules,
    Job,
    LanguageOutput,
    LanguageTestOutput,
    Packaged,
    ProjectCommands,
    checked_output_name,
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

Standard = Literal["c89", "c99", "c11", "c17", "c23"]
STANDARDS: tuple[Standard, ...] = typing.get_args(Standard)
BUILD_OPTIONS = ["-O2", "-Wall", "-Wextra"]
TEST_OPTIONS = ["-O0", "-g", "-Wall", "-Wextra"]
FLAGS = FlagRules(
    exact=frozenset(
        {"-g", "-O0", "-O1", "-O2", "-O3", "-Os", "-Wall", "-Wextra", "-Werror", "-Wpedantic"}
        | {"-pedantic", "-lm", "-lpthread"}
    ),
    prefixes=("-D",),
)
_DEFINE = re.compile(r"^-D[A-Za-z_][A-Za-z0-9_]*(=[A-Za-z0-9_.+-]*)?$")


def checked_flags(flags: list[str]) -> list[str]:
    for flag in flags:
        if flag.startswith("-D") and not _DEFINE.fullmatch(flag):
            raise invalid_argument(f"not a macro definition: {flag!r}")
    return flags


async def _sources(ctx: ToolContext) -> list[str]:
    return await projects.c_sources(ctx.runtime)


def _no_sources(message: str) -> ToolFailed:
    return ToolFailed(ErrorCode.EXECUTION_FAILED, message, exit_code=1)


async def _source_arg(ctx: ToolContext, value: str | None, name: str) -> str | None:
    path = await target_path(ctx, value, name)
    if path is None:
        return None
    info = await ctx.runtime.stat(path) if path.relative.endswith(".c") else None
    if info is None or info.kind != "file":
        raise invalid_argument(f"{name} must be an existing .c file: {value}")
    return relative_arg(path)


async def build_sources(ctx: ToolContext, value: str | None, name: str = "target") -> list[str]:
    chosen = await _source_arg(ctx, value, name)
    if chosen is not None:
        return [chosen]
    sources = [f"./{s}" for s in await _sources(ctx) if not projects.is_c_test(s)]
    if not sources:
        raise _no_sources("no C source files found (*.c within three directory levels)")
    return sources


async def test_sources(ctx: ToolContext, value: str | None, name: str = "target") -> list[str]:
    found = await _sources(ctx)
    chosen = await _source_arg(ctx, value, name)
    if chosen is None:
        tests = [s for s in found if projects.is_c_test(s)]
        if not tests:
            raise _no_sources("no C test source found (*_test.c, *test.c or test_*.c)")
        chosen = f"./{tests[0]}"
    support = [
        f"./{s}"
        for s in found
        if not projects.is_c_test(s) and s.rsplit("/", 1)[-1] != "main.c" and f"./{s}" != chosen
    ]
    return [chosen, *support]


def cc(*args: str) -> Command:
    return Command(["cc", *args], "c")


async def compile_and_run(
    ctx: ToolContext,
    sources: list[str],
    options: list[str],
    output: str,
    *,
    run: bool,
    output_kb: int | None = None,
) -> tuple[Completed, str]:
    """Compile `sources` into `.workspace-build/<output>` and, when `run`, execute it. Returns
    the combined run and the binary's workspace path ("" when compilation failed)."""
    build_dir = await output_dir(ctx, BUILD_DIR)
    binary = f"{build_dir.relative}/{output}"
    compiled = await run_toolchain(ctx, cc(*options, "-o", binary, *sources), output_kb=output_kb)
    binary_path = binary if compiled.exit_code == 0 else ""
    if compiled.exit_code != 0 or not run:
        return compiled, binary_path
    executed = await run_toolchain(ctx, Command([f"./{binary}"], "c"), output_kb=output_kb)
    return combined(compiled, executed, report_first=True), binary_path


# repo.* commands --------------------------------------------------------------------------------


async def _build(job: Job) -> Completed:
    sources = await build_sources(job.ctx, job.target)
    options = ["-std=c11", *BUILD_OPTIONS, *checked_flags(job.extra_args)]
    run, _ = await compile_and_run(
        job.ctx, sources, options, "c-app", run=False, output_kb=job.output_kb
    )
    return run


async def _test(job: Job) -> Completed:
    sources = await test_sources(job.ctx, job.target)
    options = ["-std=c11", *TEST_OPTIONS, *checked_flags(job.extra_args)]
    run, _ = await compile_and_run(
        job.ctx, sources, options, "c-test", run=True, output_kb=job.output_kb
    )
    return run


async def _syntax_check(job: Job, warnings: list[str]) -> Completed:
    path = await _source_arg(job.ctx, job.target, "target")
    sources = [path] if path else [f"./{s}" for s in await _sources(job.ctx)]
    if not sources:
        raise _no_sources("no C source files found (*.c within three directory levels)")
    return await job.run(cc("-std=c11", "-fsyntax-only", *warnings, *sources))


async def _validate(job: Job) -> Completed:
    return await _syntax_check(job, ["-Wall", "-Wextra"])


async def _static_analysis(job: Job) -> Completed:
    return await _syntax_check(job, ["-Wall", "-Wextra", "-Wpedantic", "-Wshadow", "-Wconversion"])


async def _coverage(job: Job) -> Coverage:
    return Coverage(await _test(job), supported=False)


async def _package(job: Job) -> Packaged:
    sources = await build_sources(job.ctx, job.target)
    dist = await output_dir(job.ctx, DIST_DIR)
    run = await job.run(cc("-std=c11", *BUILD_OPTIONS, "-o", f"{dist.relative}/c-app", *sources))
    return Packaged(run, f"{dist.relative}/c-app")


COMMANDS = ProjectCommands(
    build_flags=FLAGS,
    test_flags=FLAGS,
    build=_build,
    test=_test,
    validate=_validate,
    static_analysis=_static_analysis,
    coverage=_coverage,
    package=_package,
)


# c.* tools --------------------------------------------------------------------------------------


SourceFile = Annotated[str | None, Field(description="A .c file (default: discovered sources)")]


class SourceArgs(Arguments):
    source: SourceFile = None
    output_name: Annotated[str | None, Field(max_length=128)] = None
    standard: Standard = "c11"


@toolchain_tool(
    "c.build",
    f"Compile C source files with constrained compiler options (binary in {BUILD_DIR}/).",
    timeout=180,
    output_kb=1024,
    path_fields=[PathField(field="source")],
    examples=[{"source": "main.c", "output_name": "app", "standard": "c11"}],
)
async def build(ctx: ToolContext, args: SourceArgs) -> ToolResult[LanguageOutput]:
    name = checked_output_name(args.output_name, "c-app")
    sources = await build_sources(ctx, args.source, "source")
    options = [f"-std={args.standard}", *BUILD_OPTIONS]
    run, binary = await compile_and_run(ctx, sources, options, name, run=False)
    return reported(ctx, run, LanguageOutput(**ran(ctx, run, compiled_binary_path=binary)))


class TestArgs(SourceArgs):
    run: bool = True


@toolchain_tool(
    "c.test",
    "Compile and optionally run C test source files (run defaults to true; the test binary's "
    "exit code is the result).",
    timeout=180,
    output_kb=2048,
    path_fields=[PathField(field="source")],
    examples=[{"source": "calc_test.c", "run": True}],
)
async def test(ctx: ToolContext, args: TestArgs) -> ToolResult[LanguageTestOutput]:
    name = checked_output_name(args.output_name, "c-test")
    sources = await test_sources(ctx, args.source, "source")
    options = [f"-std={args.standard}", *TEST_OPTIONS]
    run, binary = await compile_and_run(ctx, sources, options, name, run=args.run)
    output = LanguageTestOutput(**ran(ctx, run, compiled_binary_path=binary), **failures(run))
    return reported(ctx, run, output)


TOOLS: list[Tool] = [build, test]
