"""repo.changed_files: the workspace's changed files, from `git status --porcelain` (or `git diff
--name-status <base_ref>...HEAD`) run through `git_runner`, or from status text the caller
provides (parsed by `git_status`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from serve_app.domain.capability import (
    ArgField,
    CostHint,
    Idempotency,
    PathField,
    RiskLevel,
    Scope,
    SideEffects,
)
from serve_app.domain.errors import ErrorCode
from serve_app.domain.models import LogLine
from serve_app.tools import git_status
from serve_app.tools.base import Tool, ToolContext, ToolFailed, ToolResult
from serve_app.tools.declare import Arguments, Output, WorkspacePathArg, bounded, tool
from serve_app.tools.fitting import head_within, leading, room_left
from serve_app.tools.git_runner import git_command
from serve_app.tools.languages import (
    DENY_CHARACTERS,
    Command,
    CommandOutput,
    Completed,
    checked_target,
    run_toolchain,
)

BASE_REF_MAX = 120
FILES_DEFAULT, FILES_MAX = 200, 2000
# git's output is read whole (up to this much) to sort the changes; what is reported is then
# fitted to the tool's output limit.
GIT_OUTPUT_KB = 4096


class ChangedFilesArgs(Arguments):
    base_ref: Annotated[str, Field(max_length=BASE_REF_MAX)] = ""
    path: WorkspacePathArg = "."
    max_files: Annotated[int, bounded(1, FILES_MAX, f"Default {FILES_DEFAULT}")] = FILES_DEFAULT
    include_untracked: Annotated[bool, Field(description="Default true")] = True
    output: Annotated[str, Field(description="git status --porcelain or --name-status text")] = ""


class ChangedFile(Output):
    path: str
    status: str
    index_status: str
    worktree_status: str
    staged: bool
    unstaged: bool
    untracked: bool
    deleted: bool
    renamed_from: str


class ChangedFilesOutput(Output):
    """`changed_count` counts the files reported; `truncated` says there were more (past
    `max_files` or the output limit)."""

    source: str
    mode: str
    base_ref: str
    path: str
    command: list[str]
    exit_code: int
    changed_count: int
    changed_files: list[ChangedFile]
    truncated: bool
    summary: str
    output: str


def _git_failed(ctx: ToolContext, run: Completed, what: str) -> ToolFailed:
    code = ErrorCode.GIT_USAGE_ERROR if run.exit_code == 129 else ErrorCode.GIT_REPO_ERROR
    first = next((line for line in run.output.splitlines() if line.strip()), f"{what} failed")
    output = CommandOutput(
        command=run.command,
        exit_code=run.exit_code,
        output=head_within(run.output, ctx.command_output_limit),
    )
    return ToolFailed(code, first.strip(), exit_code=run.exit_code, output=output, logs=run.logs)


@tool(
    name="repo.changed_files",
    description="Return deterministic changed file metadata from git status/diff or provided "
    "status output (git status --porcelain, or git diff --name-status <base_ref>...HEAD).",
    scope=Scope.REPO,
    risk=RiskLevel.LOW,
    approval=False,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.BEST_EFFORT,
    timeout=90,
    output_kb=1024,
    cost=CostHint.LOW,
    path_fields=[PathField(field="path")],
    arg_fields=[
        ArgField(field="base_ref", max_length=BASE_REF_MAX, deny_characters=DENY_CHARACTERS)
    ],
    examples=[{"path": ".", "max_files": 100}, {"base_ref": "origin/main", "path": "src"}],
)
async def changed_files(ctx: ToolContext, args: ChangedFilesArgs) -> ToolResult[ChangedFilesOutput]:
    path = await ctx.path(args.path or ".")
    base_ref = checked_target(args.base_ref, "base_ref")
    # Porcelain lines start with a status column that may be a space: keep the text as given.
    provided = args.output if args.output.strip() else ""
    command: list[str] = []
    exit_code = 0
    logs: list[LogLine] = []
    if provided:
        source = "provided_output"
        mode, entries = git_status.parse_status_text(provided)
    else:
        source = "git"
        pathspec = ["--", path.relative]
        if base_ref:
            mode = "base_ref_diff"
            git_args = ["diff", "--name-status", "-z", "--find-renames", f"{base_ref}...HEAD"]
        else:
            mode = "working_tree"
            untracked = (
                "--untracked-files=all" if args.include_untracked else "--untracked-files=no"
            )
            git_args = ["status", "--porcelain=v1", "-z", untracked]
        argv, env = await git_command(ctx, [*git_args, *pathspec])
        run = await run_toolchain(ctx, Command(argv, "git", env), output_kb=GIT_OUTPUT_KB)
        if run.exit_code != 0:
            raise _git_failed(ctx, run, "git")
        command, exit_code, logs = run.command, run.exit_code, run.logs
        entries = (
            git_status.parse_name_status_z(run.output)
            if base_ref
            else git_status.parse_status_z(run.output)
        )
    if not args.include_untracked:
        entries = [entry for entry in entries if not entry["untracked"]]
    if provided and path.requested != ".":
        prefix = path.requested + "/"
        entries = [
            e for e in entries if e["path"] == path.requested or e["path"].startswith(prefix)
        ]
    entries.sort(key=lambda entry: (entry["path"], entry["status"]))
    found = [ChangedFile(**entry) for entry in entries[: args.max_files]]
    output = ChangedFilesOutput(
        source=source,
        mode=mode,
        base_ref=base_ref,
        path=path.requested,
        command=command,
        exit_code=exit_code,
        changed_count=0,
        changed_files=[],
        truncated=False,
        summary="",
        output="",
    )
    reported = leading(found, room_left(output, ctx.output_limit))
    # The summary counts every change found; changed_count those reported.
    summary = f"identified {len(entries)} changed files"
    output.changed_files, output.changed_count = reported, len(reported)
    output.truncated = len(entries) > len(reported)
    output.summary = output.output = summary
    return ToolResult(output=output, logs=logs, exit_code=exit_code)


TOOLS: list[Tool] = [changed_files]
