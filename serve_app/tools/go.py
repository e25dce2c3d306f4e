"""go.* — the Go toolchain (contract §4.2), and the Go commands behind repo.* (§4.3).

Go's caches live under the per-session HOME (GOCACHE, GOPATH default there); the module cache is
made writable so a session's directory can always be removed, and a go.mod never triggers a
toolchain download.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field

from serve_app.domain.errors import invalid_argument, policy_denied
from serve_app.domain.paths import WorkspacePath
from serve_app.tools import toolchain_output
from serve_app.tools.base import Tool, ToolContext, ToolResult
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
    checked_target,
    failures,
    output_dir,
    ran,
    relative_arg,
    reported,
    run_toolchain,
    toolchain_tool,
)

ENV = {"GOFLAGS": "-modcacherw", "GOTOOLCHAIN": "local"}
_DENIED = ("-exec", "-toolexec", "-mod=mod", "-modfile", "-overlay", "-buildmode=plugin")
BUILD_FLAGS = FlagRules(
    exact=frozenset({"-v", "-x", "-race", "-trimpath", "-cover", "-mod=readonly", "-mod=vendor"}),
    valued=frozenset({"-tags"}),
    prefixes=("-tags=",),
    denied_prefixes=_DENIED,
)
TEST_FLAGS = FlagRules(
    exact=BUILD_FLAGS.exact | {"-short", "-failfast"},
    valued=frozenset({"-tags", "-run", "-count", "-timeout"}),
    prefixes=("-tags=", "-run=", "-count=", "-timeout="),
    denied_prefixes=_DENIED,
)
_IMPORT_PATH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.~/-]*$")
_LDFLAG_X = re.compile(r"^[A-Za-z0-9_./-]+=[A-Za-z0-9_.+:@/-]*$")
LDFLAGS_MAX = 512
RUN_PATTERN_MAX = 256


def command(*args: str) -> Command:
    return Command(["go", *args], "go", ENV)


async def package_pattern(ctx: ToolContext, value: str | None, default: str = "./...") -> str:
    """A package pattern: `./dir`, `./dir/...` (jailed as workspace paths) or an import path."""
    target = checked_target(value)
    if not target:
        return default
    if target.startswith((".", "/")):
        base, recursive = target, ""
        if target == "..." or target.endswith("/..."):
            base, recursive = target[: -len("...")].rstrip("/") or ".", "/..."
        return relative_arg(await ctx.path(base)) + recursive
    base = target.removesuffix("/...")
    if not _IMPORT_PATH.fullmatch(base) or ".." in base.split("/"):
        raise invalid_argument(f"not a Go package pattern: {target!r}")
    return target


def checked_ldflags(value: str | None) -> list[str]:
    """Only `-s`, `-w` and `-X importpath.name=value` may reach the linker."""
    text = (value or "").strip()
    if not text:
        return []
    if len(text) > LDFLAGS_MAX:
        raise invalid_argument(f"ldflags longer than {LDFLAGS_MAX} characters")
    tokens = text.split()
    checked: list[str] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token in ("-s", "-w"):
            checked.append(token)
        elif token == "-X" and index + 1 < len(tokens) and _LDFLAG_X.fullmatch(tokens[index + 1]):
            checked += [token, tokens[index + 1]]
            index += 1
        else:
            raise policy_denied(f"ldflags may only hold -s, -w and -X name=value, not {token!r}")
        index += 1
    return checked


def checked_run_pattern(value: str | None) -> str:
    pattern = (value or "").strip()
    if len(pattern) > RUN_PATTERN_MAX or any(c in pattern for c in "\x00\n\r"):
        raise invalid_argument(f"run_pattern must be one line of at most {RUN_PATTERN_MAX} chars")
    return pattern


async def _coverage_run(
    ctx: ToolContext, pattern: str, flags: list[str], output_kb: int | None = None
) -> tuple[Completed, float | None]:
    """`go test -coverprofile` into a private temporary directory, then `go tool cover -func`
    for the total over every package (its report counts only when the profile was written and
    read: exit code 0)."""
    async with ctx.runtime.temp_dir("go-cover-") as scratch:
        profile = scratch / "cover.out"
        run = await run_toolchain(
            ctx, command("test", *flags, f"-coverprofile={profile}", pattern), output_kb=output_kb
        )
        func = await run_toolchain(ctx, command("tool", "cover", f"-func={profile}"), output_kb=256)
        report = func.output if func.exit_code == 0 else ""
        return run, toolchain_output.go_coverage(report, run.output)


# repo.* commands --------------------------------------------------------------------------------


async def _build(job: Job) -> Completed:
    pattern = await package_pattern(job.ctx, job.target)
    return await job.run(command("build", *job.extra_args, pattern))


async def _test(job: Job) -> Completed:
    pattern = await package_pattern(job.ctx, job.target)
    return await job.run(command("test", *job.extra_args, pattern))


async def _validate(job: Job) -> Completed:
    return await job.run(command("build", await package_pattern(job.ctx, job.target)))


async def _vet(job: Job) -> Completed:
    return await job.run(command("vet", await package_pattern(job.ctx, job.target)))


async def _coverage(job: Job) -> Coverage:
    pattern = await package_pattern(job.ctx, job.target)
    run, percent = await _coverage_run(job.ctx, pattern, [], job.output_kb)
    return Coverage(run, supported=True, percent=percent)


async def _package(job: Job) -> Packaged:
    pattern = await package_pattern(job.ctx, job.target, default=".")
    name = pattern.rstrip("/").rsplit("/", 1)[-1]
    name = checked_output_name(None if name in (".", "...") else name, "app")
    dist = await output_dir(job.ctx, DIST_DIR)
    run = await job.run(command("build", "-o", f"./{dist.relative}/{name}", pattern))
    return Packaged(run, f"{dist.relative}/{name}")


COMMANDS = ProjectCommands(
    build_flags=BUILD_FLAGS,
    test_flags=TEST_FLAGS,
    build=_build,
    test=_test,
    validate=_validate,
    static_analysis=_vet,
    coverage=_coverage,
    package=_package,
)


# go.* tools -------------------------------------------------------------------------------------

PackagePattern = Annotated[
    str | None, Field(description="Package pattern, default ./... (e.g. ./cmd/app)")
]


class TargetArgs(Arguments):
    target: PackagePattern = None


class ModTidyArgs(Arguments):
    check: Annotated[bool, Field(description="Report only (default false)")] = False


class ModTidyOutput(LanguageOutput):
    changed_files: list[str]


_MODULE_FILES = ("go.mod", "go.sum")
MODULE_FILE_MAX_BYTES = 64 * 1024 * 1024


async def _module_files(ctx: ToolContext) -> dict[str, WorkspacePath]:
    """go.mod and go.sum through the jail: both must be inside it before tidy rewrites them."""
    return {name: await ctx.path(name) for name in _MODULE_FILES}


async def _snapshot(ctx: ToolContext, paths: dict[str, WorkspacePath]) -> dict[str, bytes | None]:
    snapshot: dict[str, bytes | None] = {}
    for name, path in paths.items():
        info = await ctx.runtime.stat(path)
        if info is None or info.kind != "file":
            snapshot[name] = None
            continue
        content = await ctx.runtime.read_file(path, max_bytes=MODULE_FILE_MAX_BYTES)
        if content.truncated:
            raise invalid_argument(f"{name} is larger than {MODULE_FILE_MAX_BYTES} bytes")
        snapshot[name] = content.data
    return snapshot


async def _restore(
    ctx: ToolContext, paths: dict[str, WorkspacePath], snapshot: dict[str, bytes | None]
) -> None:
    for name, data in snapshot.items():
        if data is None:
            await ctx.runtime.delete(paths[name], missing_ok=True)
        else:
            await ctx.runtime.write_file(paths[name], data)


@toolchain_tool(
    "go.mod.tidy",
    "Run go mod tidy to validate and normalize module dependencies. With check=true go.mod and "
    "go.sum are left as they were and exit_code 1 reports that tidying would change them.",
    timeout=180,
    output_kb=1024,
    network=True,
    examples=[{"check": True}],
)
async def mod_tidy(ctx: ToolContext, args: ModTidyArgs) -> ToolResult[ModTidyOutput]:
    paths = await _module_files(ctx)
    before = await _snapshot(ctx, paths)
    if before["go.mod"] is None:
        raise invalid_argument("go.mod not found in the workspace")
    run = await run_toolchain(ctx, command("mod", "tidy"))
    paths = await _module_files(ctx)
    after = await _snapshot(ctx, paths)
    changed = [name for name in _MODULE_FILES if before[name] != after[name]]
    if args.check and changed:
        await _restore(ctx, paths, before)
        run = Completed(
            run.command,
            1 if run.exit_code == 0 else run.exit_code,
            run.output + "".join(f"{name}: not tidy\n" for name in changed),
            run.truncated,
            run.logs,
        )
    return reported(ctx, run, ModTidyOutput(**ran(ctx, run), changed_files=changed))


@toolchain_tool(
    "go.generate",
    "Run go generate for a package target.",
    timeout=180,
    output_kb=1024,
    examples=[{"target": "./..."}],
)
async def generate(ctx: ToolContext, args: TargetArgs) -> ToolResult[LanguageOutput]:
    pattern = await package_pattern(ctx, args.target)
    run = await run_toolchain(ctx, command("generate", pattern))
    return reported(ctx, run, LanguageOutput(**ran(ctx, run)))


class BuildArgs(TargetArgs):
    ldflags: Annotated[str, Field(max_length=LDFLAGS_MAX)] = ""
    output_name: Annotated[str | None, Field(max_length=128)] = None
    race: bool = False


@toolchain_tool(
    "go.build",
    "Compile Go package with restricted build flags and optional output binary name "
    f"(written to {BUILD_DIR}/<output_name>). ldflags admits only -s, -w and -X name=value.",
    timeout=300,
    output_kb=2048,
    examples=[{"target": "./cmd/app", "output_name": "app", "ldflags": "-s -w"}],
)
async def build(ctx: ToolContext, args: BuildArgs) -> ToolResult[LanguageOutput]:
    ldflags = checked_ldflags(args.ldflags)
    flags = ["-race"] if args.race else []
    if ldflags:
        flags.append("-ldflags=" + " ".join(ldflags))
    binary = ""
    if args.output_name:
        name = checked_output_name(args.output_name, "app")
        pattern = await package_pattern(ctx, args.target, default=".")
        build_dir = await output_dir(ctx, BUILD_DIR)
        binary = f"{build_dir.relative}/{name}"
        flags += ["-o", f"./{binary}"]
    else:
        pattern = await package_pattern(ctx, args.target)
    run = await run_toolchain(ctx, command("build", *flags, pattern))
    built = binary if run.exit_code == 0 else ""
    return reported(ctx, run, LanguageOutput(**ran(ctx, run, compiled_binary_path=built)))


class TestArgs(Arguments):
    package: PackagePattern = None
    coverage: Annotated[bool, Field(description="Measure statement coverage")] = False
    run_pattern: Annotated[str, Field(max_length=RUN_PATTERN_MAX)] = ""


@toolchain_tool(
    "go.test",
    "Run Go tests with optional coverage and run-pattern filter.",
    timeout=300,
    output_kb=2048,
    examples=[{"package": "./...", "coverage": True, "run_pattern": "TestAdd"}],
)
async def test(ctx: ToolContext, args: TestArgs) -> ToolResult[LanguageTestOutput]:
    pattern = await package_pattern(ctx, args.package)
    run_pattern = checked_run_pattern(args.run_pattern)
    flags = [f"-run={run_pattern}"] if run_pattern else []
    coverage: float | None = None
    if args.coverage:
        run, coverage = await _coverage_run(ctx, pattern, flags)
    else:
        run = await run_toolchain(ctx, command("test", *flags, pattern))
    output = LanguageTestOutput(**ran(ctx, run, coverage_percent=coverage), **failures(run))
    return reported(ctx, run, output)


TOOLS: list[Tool] = [mod_tidy, generate, build, test]
