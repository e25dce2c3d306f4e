"""rust.* — cargo, clippy and rustfmt (contract §4.2), and the Rust commands behind repo.* (§4.3).

cargo finds rustup's toolchains through RUSTUP_HOME (derived from the service's HOME when unset,
see `child_environment`); CARGO_HOME stays per session.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import PurePosixPath
from typing import Annotated

from pydantic import Field

from serve_app.domain.capability import RiskLevel
from serve_app.domain.errors import invalid_argument
from serve_app.tools import projects, toolchain_output
from serve_app.tools.base import Tool, ToolContext, ToolResult
from serve_app.tools.declare import Arguments
from serve_app.tools.languages import (
    MAX_DIAGNOSTICS,
    Command,
    Completed,
    Coverage,
    FlagRules,
    Job,
    LanguageOutput,
    LanguageTestOutput,
    Packaged,
    ProjectCommands,
    checked_target,
    failures,
    ran,
    reported,
    run_toolchain,
    toolchain_tool,
)

_DENIED = ("-Z", "--config", "--manifest-path", "--target-dir", "--artifact-dir", "-C")
BUILD_FLAGS = FlagRules(
    exact=frozenset(
        {
            "--release",
            "--locked",
            "--offline",
            "--frozen",
            "--all-features",
            "--no-default-features",
            "--all-targets",
            "--workspace",
            "--quiet",
            "-q",
            "-v",
        }
    ),
    valued=frozenset({"--features", "--package", "--jobs", "--target"}),
    prefixes=("--features=", "--package=", "--jobs=", "--target="),
    denied_prefixes=_DENIED,
)
# A positional test argument is cargo's test-name filter.
TEST_FLAGS = FlagRules(
    exact=BUILD_FLAGS.exact | {"--no-fail-fast", "--lib", "--doc"},
    valued=BUILD_FLAGS.valued,
    prefixes=BUILD_FLAGS.prefixes,
    denied_prefixes=_DENIED,
    positional="plain",
)
_PACKAGE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@:+-]*$")
_FMT_DIFF = re.compile(r"^Diff in (?P<path>.+?):(?P<line>\d+):$")


def command(*args: str) -> Command:
    return Command(["cargo", *args], "cargo")


def package_args(value: str | None) -> list[str]:
    """`--package <spec>` for a target (a package name, optionally name@version)."""
    target = checked_target(value)
    if not target:
        return []
    if not _PACKAGE.fullmatch(target):
        raise invalid_argument(f"target must be a cargo package name, not {target!r}")
    return ["--package", target]


MANIFEST_MAX_BYTES = 4 * 1024 * 1024


def binary_name(manifest_text: str, has_main: bool) -> str | None:
    """The package's binary, when it has one (a [[bin]] entry, or src/main.rs: `has_main`)."""
    try:
        manifest = tomllib.loads(manifest_text)
    except tomllib.TOMLDecodeError:
        return None
    bins = manifest.get("bin")
    if isinstance(bins, list) and bins and isinstance(bins[0], dict) and bins[0].get("name"):
        return str(bins[0]["name"])
    package = manifest.get("package")
    if has_main and isinstance(package, dict):
        name = package.get("name")
        return str(name) if name else None
    return None


async def _binary_path(ctx: ToolContext, profile: str) -> str:
    manifest = await projects.root_file(ctx.runtime, "Cargo.toml")
    if manifest is None:
        return ""
    content = await ctx.runtime.read_file(manifest, max_bytes=MANIFEST_MAX_BYTES)
    if content.truncated:
        return ""
    try:
        text = content.data.decode("utf-8")
    except UnicodeDecodeError:
        return ""
    has_main = await projects.regular_file(ctx.runtime, "src/main.rs") is not None
    name = binary_name(text, has_main)
    return f"target/{profile}/{name}" if name else ""


def format_diagnostics(output: str, root: PurePosixPath) -> list[str]:
    """rustfmt --check prints `Diff in <path>:<line>:` for every hunk it would change."""
    found: dict[str, None] = {}
    for line in output.splitlines():
        if match := _FMT_DIFF.match(line.strip()):
            path = toolchain_output.display_path(match["path"], root)
            found.setdefault(f"{path}:{match['line']}: warning: not rustfmt-formatted")
    return list(found)[:MAX_DIAGNOSTICS]


# repo.* commands --------------------------------------------------------------------------------


async def _build(job: Job) -> Completed:
    return await job.run(command("build", *package_args(job.target), *job.extra_args))


async def _test(job: Job) -> Completed:
    return await job.run(command("test", *package_args(job.target), *job.extra_args))


async def _check(job: Job) -> Completed:
    return await job.run(command("check", *package_args(job.target)))


async def _clippy(job: Job) -> Completed:
    args = ["clippy", *package_args(job.target), "--all-targets", "--all-features"]
    return await job.run(command(*args, "--", "-D", "warnings"))


async def _coverage(job: Job) -> Coverage:
    # No coverage tool ships with cargo (tarpaulin/llvm-cov are add-ons): run the tests only.
    return Coverage(await _test(job), supported=False)


async def _package(job: Job) -> Packaged:
    run = await job.run(command("build", "--release", *package_args(job.target)))
    return Packaged(run, await _binary_path(job.ctx, "release") or "target/release")


COMMANDS = ProjectCommands(
    build_flags=BUILD_FLAGS,
    test_flags=TEST_FLAGS,
    build=_build,
    test=_test,
    validate=_check,
    static_analysis=_clippy,
    coverage=_coverage,
    package=_package,
)


# rust.* tools -----------------------------------------------------------------------------------


class PackageArgs(Arguments):
    target: Annotated[str | None, Field(description="Cargo package to select (--package)")] = None


class BuildArgs(PackageArgs):
    release: bool = False


@toolchain_tool(
    "rust.build",
    "Compile Rust project/package with cargo build.",
    timeout=300,
    output_kb=2048,
    network=True,
    examples=[{"release": True}],
)
async def build(ctx: ToolContext, args: BuildArgs) -> ToolResult[LanguageOutput]:
    argv = ["build", *package_args(args.target)] + (["--release"] if args.release else [])
    run = await run_toolchain(ctx, command(*argv))
    binary = await _binary_path(ctx, "release" if args.release else "debug")
    built = binary if run.exit_code == 0 else ""
    return reported(ctx, run, LanguageOutput(**ran(ctx, run, compiled_binary_path=built)))


@toolchain_tool(
    "rust.test",
    "Run Rust tests using cargo test.",
    timeout=300,
    output_kb=2048,
    examples=[{}],
)
async def test(ctx: ToolContext, args: PackageArgs) -> ToolResult[LanguageTestOutput]:
    run = await run_toolchain(ctx, command("test", *package_args(args.target)))
    return reported(ctx, run, LanguageTestOutput(**ran(ctx, run), **failures(run)))


class ClippyArgs(Arguments):
    deny_warnings: Annotated[bool, Field(description="-D warnings (default true)")] = True


@toolchain_tool(
    "rust.clippy",
    "Run clippy lints for Rust project.",
    timeout=300,
    output_kb=2048,
    examples=[{"deny_warnings": True}],
)
async def clippy(ctx: ToolContext, args: ClippyArgs) -> ToolResult[LanguageOutput]:
    argv = ["clippy", "--all-targets", "--all-features"]
    if args.deny_warnings:
        argv += ["--", "-D", "warnings"]
    run = await run_toolchain(ctx, command(*argv))
    return reported(ctx, run, LanguageOutput(**ran(ctx, run)))


class FormatArgs(Arguments):
    check: Annotated[bool, Field(description="Report only (default true)")] = True


@toolchain_tool(
    "rust.format",
    "Run rustfmt in check or write mode.",
    timeout=180,
    output_kb=1024,
    risk=RiskLevel.LOW,
    examples=[{"check": True}],
)
async def format_code(ctx: ToolContext, args: FormatArgs) -> ToolResult[LanguageOutput]:
    run = await run_toolchain(ctx, command("fmt", *(["--", "--check"] if args.check else [])))
    unformatted = format_diagnostics(run.output, ctx.workspace)
    return reported(ctx, run, LanguageOutput(**ran(ctx, run, diagnostics=unformatted or None)))


TOOLS: list[Tool] = [build, test, clippy, format_code]
