"""What the build, test and lint tools share: how a toolchain command runs and how it ends, which
extra arguments a language admits, where outputs go, and the result shapes.

How an invocation ends (the same rule for every build, test, lint, install and package tool):
a command that ran to completion is a *succeeded* invocation whatever its exit code — failing
tests, compile errors and lint findings are results, reported in `exit_code`, `diagnostics` and
`failed_tests`; the invocation *fails* only when the command could not run (toolchain missing:
`execution_failed`, exit code 127) or ran out of time (`timeout`, exit code 124).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Annotated, Literal, TypedDict, TypeVar

from pydantic import Field

from serve_app.domain.capability import (
    ArgField,
    Idempotency,
    PathField,
    RiskLevel,
    Scope,
    SideEffects,
)
from serve_app.domain.errors import ErrorCode, invalid_argument, policy_denied
from serve_app.domain.models import LogLine
from serve_app.domain.paths import WorkspacePath
from serve_app.tools import projects, toolchain_output
from serve_app.tools.base import Tool, ToolContext, ToolFailed, ToolResult
from serve_app.tools.declare import Arguments, Metadata, Output, build, tool
from serve_app.tools.fitting import fit_command_result

OUTCOME_RULE = (
    "A build, test, lint, install or package command that ran to completion is a succeeded "
    "invocation whatever its exit code: failing tests, compile errors and lint findings are "
    "results (`exit_code`, `diagnostics`, `failed_tests` in the output). The invocation fails "
    "only when the command could not run (toolchain missing: `execution_failed`, exit code 127) "
    "or ran out of time (`timeout`, exit code 124)."
)
# Appended to the description of every tool that runs a toolchain.
OUTCOME_NOTE = (
    "A run that completes is a success whatever its exit code (see exit_code, diagnostics, "
    "failed_tests); only a missing toolchain or a timeout fails the invocation."
)
KIB = 1024
MAX_DIAGNOSTICS = 80
MAX_FAILED_TESTS = 200
BUILD_DIR = ".workspace-build"
DIST_DIR = ".workspace-dist"

# Contract §4.2: the shell metacharacters `extra_args` may not contain (handlers refuse NUL too).
DENY_CHARACTERS = [";", "|", "&", "`", "$(", ">", "<", "\n", "\r"]
EXTRA_ARGS_MAX_ITEMS = 8
EXTRA_ARGS_MAX_LENGTH = 64
# The catalog's policy metadata for `extra_args` (original catalog): the union of what any
# language admits; each handler then applies its own language's allowlist.
_POLICY_DENIED_PREFIX = [
    "-exec",
    "-toolexec",
    "-mod=mod",
    "-modfile",
    "-buildmode=plugin",
    "-f",
    "--file",
    "--require",
    "--import",
    "--project-cache-dir",
]
_POLICY_TEST_PREFIX = [
    "-v",
    "-q",
    "-race",
    "-cover",
    "-coverprofile=",
    "-run=",
    "-count=",
    "-timeout=",
    "--if-present",
    "--silent",
    "--maxfail=",
    "--disable-warnings",
    "--release",
    "--locked",
    "--offline",
    "--features=",
    "--all-features",
    "--no-default-features",
    "--package=",
    "--tests",
    "-P",
    "--no-daemon",
    "-D",
]
# The build list is the test list plus `-trimpath` and `-tags=`.
_POLICY_BUILD_PREFIX = ["-v", "-q", "-race", "-trimpath", "-tags=", *_POLICY_TEST_PREFIX[3:]]


# The `extra_args` argument of the repo.* tools that take toolchain flags.
ExtraArgs = Annotated[
    list[Annotated[str, Field(max_length=EXTRA_ARGS_MAX_LENGTH)]],
    Field(
        max_length=EXTRA_ARGS_MAX_ITEMS,
        description="Extra toolchain flags from the project type's allowlist",
    ),
]


def extra_args_policy(mode: str) -> ArgField:
    return ArgField(
        field="extra_args",
        multi=True,
        max_items=EXTRA_ARGS_MAX_ITEMS,
        max_length=EXTRA_ARGS_MAX_LENGTH,
        allowed_prefix=list(_POLICY_BUILD_PREFIX if mode == "build" else _POLICY_TEST_PREFIX),
        denied_prefix=list(_POLICY_DENIED_PREFIX),
        deny_characters=list(DENY_CHARACTERS),
    )


# arguments --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlagRules:
    """One language's allowlist for `extra_args` in one mode (build or test).

    `exact` flags stand alone; `valued` flags take the next item as their value; `prefixes` are
    `--flag=value` forms. Items that do not start with `-` are positional: refused when
    `positional` is "none", jailed as workspace paths when "path", passed as they are ("plain",
    e.g. a cargo test-name filter).
    """

    exact: frozenset[str] = frozenset()
    valued: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    denied_prefixes: tuple[str, ...] = ()
    positional: Literal["none", "plain", "path"] = "none"


def _refuse_metacharacters(name: str, value: str) -> None:
    if "\x00" in value or any(token in value for token in DENY_CHARACTERS):
        raise policy_denied(f"{name} contains a forbidden character: {value!r}")


async def checked_extra_args(
    ctx: ToolContext, values: Sequence[str] | None, rules: FlagRules, what: str
) -> list[str]:
    """`extra_args` after the language's allowlist (defence in depth behind the policy engine):
    at most 8 items of 64 characters, no shell metacharacters, only listed flags."""
    items = [value.strip() for value in values or [] if value.strip()]
    if len(items) > EXTRA_ARGS_MAX_ITEMS:
        raise policy_denied(f"extra_args has more than {EXTRA_ARGS_MAX_ITEMS} items")
    checked: list[str] = []
    expecting_value_for = ""
    for item in items:
        if len(item) > EXTRA_ARGS_MAX_LENGTH:
            raise policy_denied(f"extra arg longer than {EXTRA_ARGS_MAX_LENGTH} characters")
        _refuse_metacharacters("extra arg", item)
        if expecting_value_for and not item.startswith("-"):
            checked.append(item)
            expecting_value_for = ""
            continue
        if expecting_value_for:
            raise invalid_argument(f"extra arg {expecting_value_for} needs a value")
        if item.startswith("-"):
            if any(item.startswith(denied) for denied in rules.denied_prefixes) or not (
                item in rules.exact
                or item in rules.valued
                or any(item.startswith(prefix) for prefix in rules.prefixes)
            ):
                raise policy_denied(f"extra arg {item} is not allowed for {what}")
            if item in rules.valued:
                expecting_value_for = item
        elif rules.positional == "plain":
            pass
        elif rules.positional == "path":
            # The jailed form goes to the tool: "/etc/x" means <workspace>/etc/x, as for paths.
            path, separator, node_id = item.partition("::")
            item = relative_arg(await ctx.path(path)) + separator + node_id
        else:
            raise policy_denied(f"positional extra arg {item!r} is not allowed for {what}")
        checked.append(item)
    if expecting_value_for:
        raise invalid_argument(f"extra arg {expecting_value_for} needs a value")
    return checked


def checked_target(value: str | None, name: str = "target") -> str:
    """A target (package, path, pattern): trimmed, never an option, no metacharacters."""
    target = (value or "").strip()
    if target.startswith("-"):
        raise policy_denied(f"{name} must not start with '-'")
    _refuse_metacharacters(name, target)
    return target


async def target_path(
    ctx: ToolContext, value: str | None, name: str = "target"
) -> WorkspacePath | None:
    """A path-like target through the workspace jail; None when empty."""
    target = checked_target(value, name)
    return await ctx.path(target) if target else None


def relative_arg(path: WorkspacePath) -> str:
    """A jailed path as a command argument relative to the workspace root (never an option)."""
    return "." if path.relative == "." else f"./{path.relative}"


_OUTPUT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def checked_output_name(value: str | None, default: str) -> str:
    name = (value or "").strip() or default
    if not _OUTPUT_NAME.fullmatch(name) or name in (".", ".."):
        raise invalid_argument(
            "output_name must be a plain file name (letters, digits, '.', '_', '-')"
        )
    return name


async def output_dir(ctx: ToolContext, name: str) -> WorkspacePath:
    """`.workspace-build` / `.workspace-dist` in the workspace, created if missing; checked through
    the jail after creation, so a symlink planted there cannot send output outside."""
    planned = await ctx.path(name)
    existing = await ctx.runtime.stat(planned)
    if existing is None:
        await ctx.runtime.mkdir(planned, parents=True, exist_ok=True)
    checked = await ctx.path(name)
    info = await ctx.runtime.stat(checked)
    if info is None or info.kind != "dir":
        raise invalid_argument(f"{name} exists and is not a directory")
    return checked


# running ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    argv: list[str]
    toolchain: str
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Completed:
    command: list[str]
    exit_code: int
    output: str
    truncated: bool
    logs: list[LogLine]


class CommandOutput(Output):
    """What a toolchain command that could not run or ran out of time reported: the output of
    the failed invocation."""

    command: list[str]
    exit_code: int
    output: str


def _cannot_start(exit_code: int, output: str) -> bool:
    return exit_code == -1 and output.startswith("cannot start ")


async def run_toolchain(
    ctx: ToolContext, command: Command, *, output_kb: int | None = None, stdin: bytes | None = None
) -> Completed:
    """Run one toolchain command in the workspace, keeping `output_kb` KiB of its output (by
    default the context's `command_output_limit`); raise only when it could not run or timed
    out (see the module docstring for the outcome rule)."""
    result = await ctx.run(
        command.argv,
        stdin=stdin,
        output_limit=None if output_kb is None else output_kb * KIB,
        env=dict(command.env) or None,
    )
    if result.timed_out:
        raise ToolFailed(
            ErrorCode.TIMEOUT,
            f"{command.argv[0]} timed out",
            exit_code=124,
            output=CommandOutput(command=command.argv, exit_code=124, output=result.output),
            logs=result.logs,
        )
    if _cannot_start(result.exit_code, result.output):
        raise ToolFailed(
            ErrorCode.EXECUTION_FAILED,
            f"{command.toolchain} toolchain not installed ({result.output})",
            exit_code=127,
            output=CommandOutput(command=command.argv, exit_code=127, output=result.output),
            logs=result.logs,
        )
    return Completed(
        command=list(command.argv),
        exit_code=result.exit_code,
        output=result.output,
        truncated=result.truncated,
        logs=result.logs,
    )


def combined(first: Completed, second: Completed, *, report_first: bool = False) -> Completed:
    """Two steps reported as one run (e.g. compile then execute) with the second's exit code;
    `command` is the second's, or the first's with `report_first`."""
    return Completed(
        command=first.command if report_first else second.command,
        exit_code=second.exit_code,
        output=(first.output.rstrip("\n") + "\n" + second.output).lstrip("\n"),
        truncated=first.truncated or second.truncated,
        logs=[*first.logs, *second.logs],
    )


# results ----------------------------------------------------------------------------------------


class FailedTest(Output):
    name: str
    kind: str
    line: str


class LanguageOutput(Output):
    """The output every toolchain tool of the contract declares (go.*, rust.*, node.*, python.*,
    c.*)."""

    exit_code: int
    compiled_binary_path: str
    coverage_percent: float | None
    diagnostics: list[str]
    command: list[str]
    output: str


class LanguageTestOutput(LanguageOutput):
    """A test tool's output: the failing tests the runner reported besides the run.
    `failed_count` counts every failure found (at most 200), also those `failed_tests` leaves
    out to stay within the output limit."""

    failed_tests: list[FailedTest]
    failed_count: int


class Ran(TypedDict):
    """The `LanguageOutput` fields of a run, for `LanguageOutput(**ran(...))` and its kin."""

    exit_code: int
    compiled_binary_path: str
    coverage_percent: float | None
    diagnostics: list[str]
    command: list[str]
    output: str


class Failures(TypedDict):
    failed_tests: list[FailedTest]
    failed_count: int


def ran(
    ctx: ToolContext,
    run: Completed,
    *,
    compiled_binary_path: str = "",
    coverage_percent: float | None = None,
    diagnostics: list[str] | None = None,
) -> Ran:
    """A run's exit code, command and output, and the diagnostics found in it (or `diagnostics`
    found otherwise)."""
    found = toolchain_output.diagnostics(run.output, MAX_DIAGNOSTICS, ctx.workspace)
    return Ran(
        exit_code=run.exit_code,
        compiled_binary_path=compiled_binary_path,
        coverage_percent=coverage_percent,
        diagnostics=found if diagnostics is None else diagnostics,
        command=run.command,
        output=run.output,
    )


def failures(run: Completed) -> Failures:
    """The failing tests a run reported."""
    found = [
        FailedTest(**test) for test in toolchain_output.failed_tests(run.output, MAX_FAILED_TESTS)
    ]
    return Failures(failed_tests=found, failed_count=len(found))


L = TypeVar("L", bound=LanguageOutput)


def reported(ctx: ToolContext, run: Completed, output: L) -> ToolResult[L]:
    """A toolchain tool's result: `output` fitted to the tool's output limit, the run's logs and
    exit code."""
    fit_command_result(output, ctx.output_limit)
    return ToolResult(output=output, logs=run.logs, exit_code=run.exit_code)


# what a project type provides to repo.* -----------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One repo.* action on a detected project: the target, checked extra args and how much of
    a command's output to keep (None: the context's `command_output_limit`)."""

    ctx: ToolContext
    project: projects.Project
    target: str
    extra_args: list[str]
    output_kb: int | None = None

    @property
    def root(self) -> PurePosixPath:
        return self.ctx.workspace

    async def run(self, command: Command) -> Completed:
        return await run_toolchain(self.ctx, command, output_kb=self.output_kb)


@dataclass(frozen=True)
class Coverage:
    run: Completed
    supported: bool
    percent: float | None = None


@dataclass(frozen=True)
class Packaged:
    run: Completed
    artifact_path: str


Action = Callable[[Job], Awaitable[Completed]]


@dataclass(frozen=True)
class ProjectCommands:
    """The build/test/lint/package commands of one project type (contract §4.3)."""

    build_flags: FlagRules
    test_flags: FlagRules
    build: Action
    test: Action
    validate: Action
    static_analysis: Action
    coverage: Callable[[Job], Awaitable[Coverage]]
    package: Callable[[Job], Awaitable[Packaged]]


# declaring a toolchain tool ---------------------------------------------------------------------

A = TypeVar("A", bound=Arguments)
Out = TypeVar("Out", bound=Output)


def _metadata(
    name: str,
    description: str,
    *,
    timeout: int,
    output_kb: int,
    risk: RiskLevel,
    side_effects: SideEffects,
    idempotency: Idempotency,
    network: bool,
    path_fields: Sequence[PathField],
    examples: Sequence[Mapping[str, object]],
) -> Metadata:
    """A toolchain tool's metadata: repo scope, no approval, the outcome rule in its
    description (the contract's metadata otherwise)."""
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
        path_fields=path_fields,
        examples=[dict(example) for example in examples],
    )


def toolchain_tool(
    name: str,
    description: str,
    *,
    timeout: int,
    output_kb: int,
    risk: RiskLevel = RiskLevel.MEDIUM,
    side_effects: SideEffects = SideEffects.REVERSIBLE,
    idempotency: Idempotency = Idempotency.BEST_EFFORT,
    network: bool = False,
    path_fields: Sequence[PathField] = (),
    examples: Sequence[Mapping[str, object]] = (),
) -> Callable[[Callable[[ToolContext, A], Awaitable[ToolResult[Out]]]], Tool]:
    """Declare a toolchain tool (`declare.tool` with the conventions of `_metadata`)."""
    return tool(
        **_metadata(
            name,
            description,
            timeout=timeout,
            output_kb=output_kb,
            risk=risk,
            side_effects=side_effects,
            idempotency=idempotency,
            network=network,
            path_fields=path_fields,
            examples=examples,
        )
    )


def language_tool(
    handler: Callable[[ToolContext, A], Awaitable[ToolResult[Out]]],
    *,
    arguments: type[A],
    output: type[Out],
    name: str,
    description: str,
    timeout: int,
    output_kb: int,
    risk: RiskLevel = RiskLevel.MEDIUM,
    side_effects: SideEffects = SideEffects.REVERSIBLE,
    idempotency: Idempotency = Idempotency.BEST_EFFORT,
    network: bool = False,
    path_fields: Sequence[PathField] = (),
    examples: Sequence[Mapping[str, object]] = (),
) -> Tool:
    """A toolchain tool made by a factory (`declare.build` with the conventions of
    `_metadata`)."""
    return build(
        handler,
        arguments=arguments,
        output=output,
        **_metadata(
            name,
            description,
            timeout=timeout,
            output_kb=output_kb,
            risk=risk,
            side_effects=side_effects,
            idempotency=idempotency,
            network=network,
            path_fields=path_fields,
            examples=examples,
        ),
    )
