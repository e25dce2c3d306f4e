"""git.* — git in the session workspace (contract §4.2, §4.3 git bullet, §5.3).

Every call runs `git` through `git_runner` (the session's repository only, no hooks, nothing from
configuration that runs a command), with an argument list (never a shell). User
values never become options: refs, remotes and refspecs starting with `-` are refused, revisions
follow `--end-of-options` where the subcommand supports it, and paths always follow `--` (and are
taken literally, `--literal-pathspecs`). Credentials in URLs are masked in every output, message
and log line.

Session metadata narrows what the handlers accept (`policy_denied`, HTTP 500):
`allowed_git_remotes` (CSV of remote names, `*` for all) and `allowed_git_ref_prefixes` (CSV of
prefixes; a bare name is also tried as refs/heads/, refs/tags/ and refs/remotes/). `HEAD` and
revisions relative to it (`HEAD~2`) are always allowed: it is the checkout the session is on.

A git run that fails is a `ToolFailed` whose output is the tool's own output with its "nothing
done" values, the command and what git printed (`output`; the tools whose output has no such
field report a `...Failed` model that adds it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import partial
from typing import Annotated, Any, TypeVar

from pydantic import Field

from serve_app.adapters.local_workspace import mask_credentials
from serve_app.domain.capability import (
    ArgField,
    CostHint,
    Idempotency,
    PathField,
    RiskLevel,
    Scope,
    SideEffects,
)
from serve_app.domain.errors import ErrorCode, invalid_argument, policy_denied
from serve_app.domain.models import LogLine, Session
from serve_app.runtime.interface import CommandResult
from serve_app.tools.base import Tool, ToolContext, ToolFailed, ToolResult
from serve_app.tools.declare import Arguments, Output, WorkspacePathArg, bounded, tool
from serve_app.tools.fitting import leading
from serve_app.tools.fs import patch_paths
from serve_app.tools.git_runner import run_git

SHELL_DENY = [";", "|", "&", "`", "$(", ">", "<", "\n", "\r"]
SHELL_DENY_SPACE = [*SHELL_DENY, " "]
DEFAULT_REMOTE = "origin"
LOG_DEFAULT, LOG_MAX = 20, 200
PATCH_MAX_BYTES = 1024 * 1024
# What git prints for a patch's `--numstat` (parsed, never reported) and for `rev-parse`.
NUMSTAT_OUTPUT_LIMIT = 4 * PATCH_MAX_BYTES
REV_PARSE_OUTPUT_LIMIT = 16 * 1024
IDENTITY_MAX_CHARS = 128
FALLBACK_IDENTITY = "workspace-bot"
MESSAGE_MAX_CHARS = 1024
_HEAD = re.compile(r"^HEAD(?:[~^][0-9]*)*$")
_RANGE = re.compile(r"\.\.\.?")
_REF_NAMESPACES = ("refs/heads/", "refs/tags/", "refs/remotes/")
_ERROR_LINE = re.compile(r"^(fatal|error):", re.IGNORECASE)

OutputT = TypeVar("OutputT", bound=Output)
Failed = Callable[..., Output]
"""A failed run's output: called with `command` and `output` (what git printed)."""


def _ref_rule(field: str) -> ArgField:
    return ArgField(field=field, max_length=256, deny_characters=SHELL_DENY)


_REMOTE_RULES = [
    ArgField(field="remote", max_length=128, deny_characters=SHELL_DENY_SPACE),
    ArgField(field="refspec", max_length=512, deny_characters=SHELL_DENY_SPACE),
]
_REPOSITORY = ["workspace must contain a git repository"]
_NO_MUTATION = ["no repository mutation"]


# outputs every tool shares ------------------------------------------------------------------------


class GitFailed(Output):
    """What any failed git run reports: the command and what git printed."""

    command: list[str]
    output: str


# running git --------------------------------------------------------------------------------------


def _masked_logs(logs: list[LogLine]) -> list[LogLine]:
    return [line.model_copy(update={"message": mask_credentials(line.message)}) for line in logs]


def _command(args: Sequence[str]) -> list[str]:
    return [mask_credentials(part) for part in ("git", *args)]


def _text(result: CommandResult) -> str:
    return mask_credentials(result.output)


def _error_summary(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if _ERROR_LINE.match(line)]
    # git's own errors when it printed any; otherwise its conclusion, which comes last.
    summary = "; ".join(errors[:3] or lines[-3:])
    return summary[:1024] or "no output"


def git_failure(
    result: CommandResult, args: Sequence[str], failed: Failed = GitFailed
) -> ToolFailed:
    """A failed git run as a tool failure: exit 128 → git_repo_error, 129 → git_usage_error,
    a timeout → timeout (exit 124), anything else → execution_failed. Its output is `failed`
    with the command and what git printed."""
    text = _text(result)
    output = failed(command=_command(args), output=text)
    logs = _masked_logs(result.logs)
    what = f"git {args[0]}" if args else "git"
    if result.timed_out:
        return ToolFailed(
            ErrorCode.TIMEOUT, f"{what} timed out", exit_code=124, output=output, logs=logs
        )
    code = {128: ErrorCode.GIT_REPO_ERROR, 129: ErrorCode.GIT_USAGE_ERROR}.get(
        result.exit_code, ErrorCode.EXECUTION_FAILED
    )
    return ToolFailed(
        code,
        f"{what} failed: {_error_summary(text)}",
        exit_code=result.exit_code if result.exit_code > 0 else 1,
        output=output,
        logs=logs,
    )


async def _run_checked(
    ctx: ToolContext,
    args: Sequence[str],
    *,
    failed: Failed,
    output_limit: int | None = None,
    stdin: bytes | None = None,
    identity: tuple[str, str] | None = None,
) -> CommandResult:
    """Run git, keeping `output_limit` bytes of what it prints (by default what the tool's
    output has room for); a failure raises `git_failure`."""
    result = await run_git(
        ctx,
        args,
        output_limit=output_limit,
        stdin=stdin,
        identity=identity,
    )
    if result.timed_out or result.exit_code != 0:
        raise git_failure(result, args, failed)
    return result


def _succeeded(result: CommandResult, output: OutputT) -> ToolResult[OutputT]:
    return ToolResult(output=output, logs=_masked_logs(result.logs), exit_code=0)


# argument checks ----------------------------------------------------------------------------------


def _csv(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


def _option_safe(value: str, field: str) -> str:
    """A value that git will read as a name, never as an option."""
    value = value.strip()
    if value.startswith("-"):
        raise invalid_argument(f"{field} must not start with '-'")
    if any(char in value for char in ("\x00", "\n", "\r")):
        raise invalid_argument(f"{field} contains a control character")
    return value


def _one_ref_allowed(prefixes: list[str], ref: str) -> bool:
    candidate = ref.strip().removeprefix("+").strip()
    if not candidate or _HEAD.match(candidate):
        return True
    names = [candidate]
    if not candidate.startswith("refs/"):
        names += [namespace + candidate for namespace in _REF_NAMESPACES]
    return any(name.startswith(prefix) for prefix in prefixes for name in names)


def ref_allowed(session: Session, ref: str) -> bool:
    """`allowed_git_ref_prefixes` applied to a revision (each side of a range `a..b`)."""
    prefixes = _csv(session.meta("allowed_git_ref_prefixes"))
    if not prefixes or "*" in prefixes:
        return True
    return all(_one_ref_allowed(prefixes, part) for part in _RANGE.split(ref))


def refspec_allowed(session: Session, refspec: str) -> bool:
    """Both sides of `src:dst` must pass the ref prefixes (an empty side is not checked)."""
    return all(ref_allowed(session, side) for side in refspec.split(":", 1))


def remote_allowed(session: Session, remote: str) -> bool:
    allowed = _csv(session.meta("allowed_git_remotes"))
    return not allowed or "*" in allowed or remote in allowed


def _checked_ref(ctx: ToolContext, value: str, field: str) -> str:
    ref = _option_safe(value, field)
    if not ref:
        raise invalid_argument(f"{field} must not be empty")
    if not ref_allowed(ctx.session, ref):
        raise policy_denied(f"{field} outside allowlist")
    return ref


async def _checked_paths(ctx: ToolContext, values: Sequence[str]) -> list[str]:
    """Workspace-relative paths for git (after `--`); each one goes through the jail."""
    paths: list[str] = []
    for raw in values:
        if not raw.strip():
            continue
        if raw.strip().startswith("-"):
            raise invalid_argument("paths must not start with '-'")
        target = await ctx.path(raw, follow_final=False)
        if target.relative.startswith("-"):
            raise invalid_argument("paths must not start with '-'")
        paths.append(target.relative)
    return paths


def _identity_value(raw: str) -> str:
    value = "".join(char for char in raw if char.isprintable() and char not in "<>").strip()
    return value[:IDENTITY_MAX_CHARS].strip()


def commit_identity(session: Session) -> tuple[str, str]:
    """Metadata `git_author_name`/`git_author_email`, else the actor (`<actor>@workspace.local`)."""
    actor = _identity_value(session.principal.actor_id) or FALLBACK_IDENTITY
    name = _identity_value(session.meta("git_author_name")) or actor
    email = _identity_value(session.meta("git_author_email"))
    if "@" not in email:
        email = f"{actor}@workspace.local"
    return name, email


# git.status ---------------------------------------------------------------------------------------


class StatusArgs(Arguments):
    short: Annotated[bool, Field(description="Porcelain v1 output (default true)")] = True


class StatusOutput(Output):
    command: list[str]
    status: str


class StatusFailed(StatusOutput):
    output: str


@tool(
    name="git.status",
    description="Run git status in the workspace repository.",
    scope=Scope.REPO,
    risk=RiskLevel.LOW,
    approval=False,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.GUARANTEED,
    timeout=20,
    output_kb=256,
    preconditions=_REPOSITORY,
    postconditions=_NO_MUTATION,
    examples=[{"short": True}],
)
async def status(ctx: ToolContext, args: StatusArgs) -> ToolResult[StatusOutput]:
    command = ["status", "--porcelain=v1"] if args.short else ["status"]
    result = await _run_checked(ctx, command, failed=partial(StatusFailed, status=""))
    return _succeeded(result, StatusOutput(command=_command(command), status=_text(result)))


# git.diff -----------------------------------------------------------------------------------------


class DiffArgs(Arguments):
    staged: Annotated[bool, Field(description="Diff the index against HEAD (or base)")] = False
    paths: Annotated[
        list[WorkspacePathArg], Field(description="Limit the diff to these workspace paths")
    ] = []
    base: Annotated[str, Field(description="Revision to diff against")] = ""


class DiffOutput(Output):
    command: list[str]
    diff: str


class DiffFailed(DiffOutput):
    output: str


@tool(
    name="git.diff",
    description="Return unified diff from git workspace.",
    scope=Scope.REPO,
    risk=RiskLevel.LOW,
    approval=False,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.GUARANTEED,
    timeout=30,
    output_kb=1024,
    path_fields=[PathField(field="paths", multi=True)],
    preconditions=_REPOSITORY,
    postconditions=_NO_MUTATION,
    examples=[{"staged": False}],
)
async def diff(ctx: ToolContext, args: DiffArgs) -> ToolResult[DiffOutput]:
    paths = await _checked_paths(ctx, args.paths)
    command = ["diff", "--no-color", "--no-ext-diff"]
    if args.staged:
        command.append("--staged")
    if args.base.strip():
        command += ["--end-of-options", _checked_ref(ctx, args.base, "base")]
    command += ["--", *paths]
    failed = partial(DiffFailed, diff="")
    # Outside a repository `git diff` falls back to --no-index; ask git for the repository first.
    await _run_checked(
        ctx, ["rev-parse", "--git-dir"], failed=failed, output_limit=REV_PARSE_OUTPUT_LIMIT
    )
    result = await _run_checked(ctx, command, failed=failed)
    return _succeeded(result, DiffOutput(command=_command(command), diff=_text(result)))


# git.apply_patch ----------------------------------------------------------------------------------


class ApplyPatchArgs(Arguments):
    patch: Annotated[str, Field(min_length=1, max_length=PATCH_MAX_BYTES)]
    check: Annotated[
        bool, Field(description="Only check that the patch applies; change nothing")
    ] = False


class ApplyPatchOutput(Output):
    command: list[str]
    applied: bool
    checked: bool
    changed_paths: list[str]
    output: str


@tool(
    name="git.apply_patch",
    description="Apply a unified diff patch using git apply.",
    scope=Scope.REPO,
    risk=RiskLevel.MEDIUM,
    approval=True,
    side_effects=SideEffects.REVERSIBLE,
    idempotency=Idempotency.BEST_EFFORT,
    timeout=45,
    output_kb=512,
    cost=CostHint.MEDIUM,
    preconditions=_REPOSITORY,
    postconditions=["working tree may change"],
    examples=[{"patch": "--- a/x.txt\n+++ b/x.txt\n@@ -1 +1 @@\n-old\n+new\n", "check": True}],
)
async def apply_patch(ctx: ToolContext, args: ApplyPatchArgs) -> ToolResult[ApplyPatchOutput]:
    patch, check = args.patch, args.check
    paths = patch_paths(patch)
    if not paths:
        raise invalid_argument("patch has no file headers (--- / +++ lines)")
    for path in paths:
        await ctx.path(path, follow_final=False)
    failed = partial(ApplyPatchOutput, applied=False, checked=check, changed_paths=paths)
    # The files git itself would touch (`--numstat` parses and applies nothing), which also covers
    # `diff --git` entries without ---/+++ lines.
    numstat = ["apply", "--numstat", "-z", "-"]
    stat = await _run_checked(
        ctx,
        numstat,
        failed=failed,
        output_limit=NUMSTAT_OUTPUT_LIMIT,
        stdin=patch.encode("utf-8"),
    )
    records = (record.split("\t", 2) for record in stat.output.split("\0"))
    for fields in records:
        if len(fields) == 3 and fields[2]:
            await ctx.path(fields[2], follow_final=False)
    command = ["apply", "--whitespace=nowarn", *(["--check"] if check else []), "-"]
    result = await _run_checked(ctx, command, failed=failed, stdin=patch.encode("utf-8"))
    output = ApplyPatchOutput(
        command=_command(command),
        applied=not check,
        checked=check,
        changed_paths=paths,
        output=_text(result),
    )
    return _succeeded(result, output)


# git.checkout -------------------------------------------------------------------------------------


class CheckoutArgs(Arguments):
    ref: Annotated[str, Field(description="Branch, tag or commit (the new branch with create)")]
    create: Annotated[
        bool, Field(description="Create branch `ref` (at start_point) and switch to it")
    ] = False
    start_point: Annotated[str, Field(description="Where the new branch starts (needs create)")] = (
        ""
    )
    force: Annotated[
        bool, Field(description="Discard local changes that would block the checkout")
    ] = False


class CheckoutOutput(Output):
    command: list[str]
    ref: str
    created: bool
    output: str


@tool(
    name="git.checkout",
    description="Checkout a branch or ref, optionally creating a new branch.",
    scope=Scope.REPO,
    risk=RiskLevel.MEDIUM,
    approval=False,
    side_effects=SideEffects.REVERSIBLE,
    idempotency=Idempotency.BEST_EFFORT,
    timeout=30,
    output_kb=512,
    arg_fields=[_ref_rule("ref"), _ref_rule("start_point")],
    cost=CostHint.MEDIUM,
    preconditions=_REPOSITORY,
    postconditions=["checked out ref may change working tree"],
    examples=[
        {"ref": "feature/new-api"},
        {"ref": "release-2026-02", "create": True, "start_point": "origin/main"},
    ],
)
async def checkout(ctx: ToolContext, args: CheckoutArgs) -> ToolResult[CheckoutOutput]:
    ref = _checked_ref(ctx, args.ref, "ref")
    create = args.create
    start_point = args.start_point.strip()
    if start_point:
        if not create:
            raise invalid_argument("start_point needs create=true")
        start_point = _checked_ref(ctx, start_point, "start_point")
    # `git checkout` has no --end-of-options; names never start with '-', and `--` ends the
    # revisions so a file named like the ref is not taken instead.
    command = ["checkout", *(["--force"] if args.force else [])]
    command += ["-b", ref, *([start_point] if start_point else [])] if create else [ref]
    command.append("--")
    failed = partial(CheckoutOutput, ref=ref, created=False)
    result = await _run_checked(ctx, command, failed=failed)
    output = CheckoutOutput(
        command=_command(command), ref=ref, created=create, output=_text(result)
    )
    return _succeeded(result, output)


# git.log ------------------------------------------------------------------------------------------


_LOG_FORMAT = "--pretty=format:%H%x1f%an%x1f%ae%x1f%ad%x1f%s%x1f%P"


class LogArgs(Arguments):
    ref: Annotated[str, Field(description="Revision or range (default HEAD)")] = "HEAD"
    max_count: Annotated[int, bounded(1, LOG_MAX, f"Default {LOG_DEFAULT}")] = LOG_DEFAULT


class LogEntry(Output):
    commit: str
    hash: str
    author: str
    author_name: str
    author_email: str
    date: str
    subject: str
    parents: list[str]


class LogOutput(Output):
    command: list[str]
    ref: str
    count: int
    entries: list[LogEntry]


class LogFailed(LogOutput):
    output: str


@tool(
    name="git.log",
    description="List commit history for a ref with bounded output.",
    scope=Scope.REPO,
    risk=RiskLevel.LOW,
    approval=False,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.GUARANTEED,
    timeout=20,
    output_kb=1024,
    arg_fields=[_ref_rule("ref")],
    preconditions=_REPOSITORY,
    postconditions=_NO_MUTATION,
    examples=[{"ref": "HEAD", "max_count": 20}],
)
async def log(ctx: ToolContext, args: LogArgs) -> ToolResult[LogOutput]:
    ref = _checked_ref(ctx, args.ref or "HEAD", "ref")
    command = [
        "log",
        "-z",
        "--no-color",
        "--date=iso-strict",
        f"--max-count={args.max_count}",
        _LOG_FORMAT,
        "--end-of-options",
        ref,
        "--",
    ]
    failed = partial(LogFailed, ref=ref, count=0, entries=[])
    result = await _run_checked(ctx, command, failed=failed)
    text = _text(result)
    if result.truncated:
        text = text.rpartition("\0")[0]  # the record cut short, and the truncation note
    entries = leading(parse_log(text), ctx.command_output_limit)
    output = LogOutput(command=_command(command), ref=ref, count=len(entries), entries=entries)
    return _succeeded(result, output)


def parse_log(text: str) -> list[LogEntry]:
    """Records of `git log -z` with the unit-separated fields of `_LOG_FORMAT`."""
    entries: list[LogEntry] = []
    for record in text.split("\0"):
        fields = record.strip("\n").split("\x1f")
        if len(fields) != 6:
            continue
        sha, name, email, date, subject, parents = fields
        entries.append(
            LogEntry(
                commit=sha,
                hash=sha,
                author=f"{name} <{email}>",
                author_name=name,
                author_email=email,
                date=date,
                subject=subject,
                parents=parents.split(),
            )
        )
    return entries


# git.show -----------------------------------------------------------------------------------------


class ShowArgs(Arguments):
    ref: Annotated[str, Field(description="Revision to show (default HEAD)")] = "HEAD"
    path: Annotated[WorkspacePathArg, Field(description="Limit to this path")] = ""
    stat: Annotated[bool, Field(description="Include the diffstat (default true)")] = True
    patch: Annotated[bool, Field(description="Include the patch (default true)")] = True


class ShowOutput(Output):
    command: list[str]
    ref: str
    path: str
    show: str


class ShowFailed(ShowOutput):
    output: str


@tool(
    name="git.show",
    description="Show commit details or file content at a ref.",
    scope=Scope.REPO,
    risk=RiskLevel.LOW,
    approval=False,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.GUARANTEED,
    timeout=30,
    output_kb=1024,
    path_fields=[PathField(field="path")],
    arg_fields=[_ref_rule("ref")],
    preconditions=_REPOSITORY,
    postconditions=_NO_MUTATION,
    examples=[{"ref": "HEAD~1"}, {"ref": "HEAD", "path": "README.md", "patch": False}],
)
async def show(ctx: ToolContext, args: ShowArgs) -> ToolResult[ShowOutput]:
    ref = _checked_ref(ctx, args.ref or "HEAD", "ref")
    paths = await _checked_paths(ctx, [args.path] if args.path else [])
    command = ["show", "--no-color", "--no-ext-diff"]
    if args.stat:
        command.append("--stat")
    if args.patch:
        command.append("--patch")
    if not args.stat and not args.patch:
        command += ["--pretty=fuller", "--no-patch"]
    command += ["--end-of-options", ref, "--", *paths]
    path = paths[0] if paths else ""
    result = await _run_checked(
        ctx, command, failed=partial(ShowFailed, ref=ref, path=path, show="")
    )
    output = ShowOutput(command=_command(command), ref=ref, path=path, show=_text(result))
    return _succeeded(result, output)


# git.branch_list ----------------------------------------------------------------------------------


class BranchListArgs(Arguments):
    all: Annotated[bool, Field(description="Local and remote-tracking branches")] = False
    remotes: Annotated[bool, Field(description="Remote-tracking branches only")] = False


class Branch(Output):
    name: str
    upstream: str
    commit: str
    current: bool


class BranchListOutput(Output):
    command: list[str]
    count: int
    branches: list[Branch]


class BranchListFailed(BranchListOutput):
    output: str


_BRANCH_FORMAT = "--format=%(refname:short)%00%(upstream:short)%00%(objectname)%00%(HEAD)"


def parse_branches(text: str) -> list[Branch]:
    branches: list[Branch] = []
    for line in text.splitlines():
        fields = line.split("\0")
        if len(fields) != 4 or not fields[0].strip():
            continue
        name, upstream, sha, head = fields
        branches.append(Branch(name=name, upstream=upstream, commit=sha, current=head == "*"))
    return branches


@tool(
    name="git.branch_list",
    description="List local and/or remote branches.",
    scope=Scope.REPO,
    risk=RiskLevel.LOW,
    approval=False,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.GUARANTEED,
    timeout=20,
    output_kb=512,
    preconditions=_REPOSITORY,
    postconditions=_NO_MUTATION,
    examples=[{"all": True}],
)
async def branch_list(ctx: ToolContext, args: BranchListArgs) -> ToolResult[BranchListOutput]:
    command = ["branch", "--list", "--no-color", _BRANCH_FORMAT]
    if args.all:
        command.append("--all")
    elif args.remotes:
        command.append("--remotes")
    failed = partial(BranchListFailed, count=0, branches=[])
    result = await _run_checked(ctx, command, failed=failed)
    lines = _text(result).splitlines()
    if result.truncated:
        lines = lines[:-2]  # the line cut short, and the truncation note
    branches = leading(parse_branches("\n".join(lines)), ctx.command_output_limit)
    output = BranchListOutput(command=_command(command), count=len(branches), branches=branches)
    return _succeeded(result, output)


# git.commit ---------------------------------------------------------------------------------------


class CommitArgs(Arguments):
    message: str
    all: Annotated[bool, Field(description="Stage every change (new files included) first")] = False
    paths: Annotated[
        list[WorkspacePathArg], Field(description="Stage and commit only these paths")
    ] = []


class CommitOutput(Output):
    command: list[str]
    committed: bool
    commit: str
    output: str


@tool(
    name="git.commit",
    description="Create a commit from staged changes or selected paths.",
    scope=Scope.REPO,
    risk=RiskLevel.MEDIUM,
    approval=True,
    side_effects=SideEffects.IRREVERSIBLE,
    idempotency=Idempotency.NONE,
    timeout=30,
    output_kb=512,
    path_fields=[PathField(field="paths", multi=True)],
    arg_fields=[ArgField(field="message", max_length=MESSAGE_MAX_CHARS, deny_characters=["\x00"])],
    cost=CostHint.MEDIUM,
    preconditions=["workspace must contain a git repository and staged changes"],
    postconditions=["new commit may be created"],
    examples=[{"message": "feat: add workspace policy guard", "all": True}],
)
async def commit(ctx: ToolContext, args: CommitArgs) -> ToolResult[CommitOutput]:
    message = args.message
    if not message.strip():
        raise invalid_argument("message must not be empty")
    if "\x00" in message:
        raise invalid_argument("message contains a NUL character")
    paths = await _checked_paths(ctx, args.paths)
    if args.all and paths:
        raise invalid_argument("all and paths cannot be combined")
    identity = commit_identity(ctx.session)
    failed = partial(CommitOutput, committed=False, commit="")
    if args.all:
        await _run_checked(ctx, ["add", "--all"], failed=failed)
    elif paths:
        await _run_checked(ctx, ["add", "--", *paths], failed=failed)
    command = ["commit", f"--message={message}", *(["--", *paths] if paths else [])]
    result = await _run_checked(ctx, command, failed=failed, identity=identity)
    head = await _run_checked(
        ctx,
        ["rev-parse", "--verify", "HEAD"],
        failed=failed,
        output_limit=REV_PARSE_OUTPUT_LIMIT,
    )
    output = CommitOutput(
        command=_command(command),
        committed=True,
        commit=head.output.strip(),
        output=_text(result),
    )
    return _succeeded(result, output)


# git.push / git.fetch / git.pull ------------------------------------------------------------------


class RemoteArgs(Arguments):
    remote: Annotated[str, Field(description=f"Remote name or URL (default {DEFAULT_REMOTE})")] = (
        DEFAULT_REMOTE
    )
    refspec: Annotated[str, Field(description="Refspec, e.g. HEAD:refs/heads/feature/x")] = ""


class PushArgs(RemoteArgs):
    set_upstream: Annotated[bool, Field(description="Record the remote branch as upstream")] = False
    force_with_lease: Annotated[
        bool, Field(description="Force only over the expected remote ref")
    ] = False


class FetchArgs(RemoteArgs):
    prune: Annotated[
        bool, Field(description="Remove remote-tracking refs that no longer exist")
    ] = False
    tags: Annotated[bool, Field(description="Fetch all tags")] = False


class PullArgs(RemoteArgs):
    rebase: Annotated[
        bool, Field(description="Rebase onto the fetched branch instead of merging")
    ] = False


class RemoteOutput(Output):
    command: list[str]
    remote: str
    refspec: str


class PushOutput(RemoteOutput):
    pushed: bool
    output: str


class FetchOutput(RemoteOutput):
    fetched: bool
    output: str


class PullOutput(RemoteOutput):
    pulled: bool
    output: str


R = TypeVar("R", bound=RemoteOutput)
_REMOTE_PRECONDITIONS = ["remote and refspec must be allowlisted by metadata policy"]


async def _remote_command(
    ctx: ToolContext,
    args: RemoteArgs,
    *,
    subcommand: str,
    flags: list[str],
    output: type[R],
    done: str,
    identity: tuple[str, str] | None = None,
) -> ToolResult[R]:
    """Run `git <subcommand>` against the checked remote and refspec; `done` names the output's
    field that says whether it happened."""
    remote = _option_safe(args.remote, "remote") or DEFAULT_REMOTE
    if not remote_allowed(ctx.session, remote):
        raise policy_denied("remote outside allowlist")
    refspec = _option_safe(args.refspec, "refspec")
    if not refspec_allowed(ctx.session, refspec):
        raise policy_denied("refspec outside allowlist")
    command = [subcommand, *flags, "--end-of-options", remote, *([refspec] if refspec else [])]
    shown: dict[str, Any] = {"remote": mask_credentials(remote), "refspec": refspec}

    def report(**fields: Any) -> R:
        return output.model_validate(shown | fields)

    result = await _run_checked(
        ctx, command, failed=partial(report, **{done: False}), identity=identity
    )
    return _succeeded(
        result, report(**{done: True}, command=_command(command), output=_text(result))
    )


@tool(
    name="git.push",
    description="Push commits to an allowlisted remote/refspec.",
    scope=Scope.REPO,
    risk=RiskLevel.HIGH,
    approval=True,
    side_effects=SideEffects.IRREVERSIBLE,
    idempotency=Idempotency.BEST_EFFORT,
    timeout=60,
    output_kb=1024,
    network=True,
    arg_fields=_REMOTE_RULES,
    cost=CostHint.HIGH,
    preconditions=_REMOTE_PRECONDITIONS,
    postconditions=["remote repository may be mutated"],
    examples=[{"remote": "origin", "refspec": "HEAD:refs/heads/feature/new-api"}],
)
async def push(ctx: ToolContext, args: PushArgs) -> ToolResult[PushOutput]:
    flags = [
        *(["--set-upstream"] if args.set_upstream else []),
        *(["--force-with-lease"] if args.force_with_lease else []),
    ]
    return await _remote_command(
        ctx, args, subcommand="push", flags=flags, output=PushOutput, done="pushed"
    )


@tool(
    name="git.fetch",
    description="Fetch refs from an allowlisted remote/refspec.",
    scope=Scope.REPO,
    risk=RiskLevel.MEDIUM,
    approval=True,
    side_effects=SideEffects.REVERSIBLE,
    idempotency=Idempotency.BEST_EFFORT,
    timeout=60,
    output_kb=1024,
    network=True,
    arg_fields=_REMOTE_RULES,
    cost=CostHint.MEDIUM,
    preconditions=_REMOTE_PRECONDITIONS,
    postconditions=["remote-tracking refs may change"],
    examples=[{"remote": "origin", "refspec": "refs/heads/main", "prune": True}],
)
async def fetch(ctx: ToolContext, args: FetchArgs) -> ToolResult[FetchOutput]:
    flags = [*(["--prune"] if args.prune else []), *(["--tags"] if args.tags else [])]
    return await _remote_command(
        ctx, args, subcommand="fetch", flags=flags, output=FetchOutput, done="fetched"
    )


@tool(
    name="git.pull",
    description="Pull from an allowlisted remote/refspec.",
    scope=Scope.REPO,
    risk=RiskLevel.MEDIUM,
    approval=True,
    side_effects=SideEffects.REVERSIBLE,
    idempotency=Idempotency.BEST_EFFORT,
    timeout=60,
    output_kb=1024,
    network=True,
    arg_fields=_REMOTE_RULES,
    cost=CostHint.MEDIUM,
    preconditions=_REMOTE_PRECONDITIONS,
    postconditions=["local branch may change"],
    examples=[{"remote": "origin", "refspec": "main", "rebase": True}],
)
async def pull(ctx: ToolContext, args: PullArgs) -> ToolResult[PullOutput]:
    # Explicit merge or rebase: without one, git 2.27+ refuses divergent branches.
    flags = ["--rebase" if args.rebase else "--no-rebase", "--no-edit"]
    return await _remote_command(
        ctx,
        args,
        subcommand="pull",
        flags=flags,
        output=PullOutput,
        done="pulled",
        identity=commit_identity(ctx.session),
    )


# registry -----------------------------------------------------------------------------------------


TOOLS: list[Tool] = [
    status,
    diff,
    apply_patch,
    checkout,
    log,
    show,
    branch_list,
    commit,
    push,
    fetch,
    pull,
]
