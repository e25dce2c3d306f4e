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
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

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
from serve_app.tools.base import Tool, ToolContext, ToolFailed, ToolResult, define
from serve_app.tools.fs import patch_paths
from serve_app.tools.git_runner import run_git

SHELL_DENY = [";", "|", "&", "`", "$(", ">", "<", "\n", "\r"]
SHELL_DENY_SPACE = [*SHELL_DENY, " "]
DEFAULT_REMOTE = "origin"
LOG_DEFAULT, LOG_MAX = 20, 200
PATCH_MAX_BYTES = 1024 * 1024
IDENTITY_MAX_CHARS = 128
FALLBACK_IDENTITY = "workspace-bot"
MESSAGE_MAX_CHARS = 1024
_HEAD = re.compile(r"^HEAD(?:[~^][0-9]*)*$")
_RANGE = re.compile(r"\.\.\.?")
_REF_NAMESPACES = ("refs/heads/", "refs/tags/", "refs/remotes/")
_ERROR_LINE = re.compile(r"^(fatal|error):", re.IGNORECASE)
_STRING = {"type": "string"}
_BOOL = {"type": "boolean"}
_COMMAND = {"type": "array", "items": _STRING}
_PATHS = {"type": "array", "items": {"type": "string", "maxLength": 4096}}


def _ref_rule(field: str) -> ArgField:
    return ArgField(field=field, max_length=256, deny_characters=SHELL_DENY)


_REMOTE_RULES = [
    ArgField(field="remote", max_length=128, deny_characters=SHELL_DENY_SPACE),
    ArgField(field="refspec", max_length=512, deny_characters=SHELL_DENY_SPACE),
]


# running git --------------------------------------------------------------------------------------


async def _git(
    ctx: ToolContext,
    args: Sequence[str],
    *,
    output_kb: int,
    stdin: bytes | None = None,
    identity: tuple[str, str] | None = None,
) -> CommandResult:
    return await run_git(ctx, args, output_limit=output_kb * 1024, stdin=stdin, identity=identity)


def _masked_logs(logs: list[LogLine]) -> list[LogLine]:
    return [line.model_copy(update={"message": mask_credentials(line.message)}) for line in logs]


def _command(args: Sequence[str]) -> list[str]:
    return [mask_credentials(part) for part in ("git", *args)]


def _error_summary(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if _ERROR_LINE.match(line)]
    # git's own errors when it printed any; otherwise its conclusion, which comes last.
    summary = "; ".join(errors[:3] or lines[-3:])
    return summary[:1024] or "no output"


def git_failure(result: CommandResult, args: Sequence[str], output: dict[str, Any]) -> ToolFailed:
    """A failed git run as a tool failure: exit 128 → git_repo_error, 129 → git_usage_error,
    a timeout → timeout (exit 124), anything else → execution_failed."""
    text = mask_credentials(result.output)
    output = output | {"output": text}
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
    output_kb: int,
    failed_output: dict[str, Any],
    stdin: bytes | None = None,
    identity: tuple[str, str] | None = None,
) -> CommandResult:
    result = await _git(ctx, args, output_kb=output_kb, stdin=stdin, identity=identity)
    if result.timed_out or result.exit_code != 0:
        raise git_failure(result, args, failed_output | {"command": _command(args)})
    return result


def _succeeded(
    result: CommandResult, args: Sequence[str], output: dict[str, Any], text_key: str = "output"
) -> ToolResult:
    body = {"command": _command(args), **output, text_key: mask_credentials(result.output)}
    return ToolResult(output=body, logs=_masked_logs(result.logs), exit_code=0)


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


async def _checked_paths(ctx: ToolContext, values: list[str] | None) -> list[str]:
    """Workspace-relative paths for git (after `--`); each one goes through the jail."""
    paths: list[str] = []
    for raw in values or []:
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

STATUS = define(
    name="git.status",
    description="Run git status in the workspace repository.",
    scope=Scope.REPO,
    risk=RiskLevel.LOW,
    approval=False,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.GUARANTEED,
    timeout=20,
    output_kb=256,
    properties={"short": _BOOL | {"description": "Porcelain v1 output (default true)"}},
    outputs={"status": _STRING, "command": _COMMAND},
    preconditions=["workspace must contain a git repository"],
    postconditions=["no repository mutation"],
    examples=[{"short": True}],
)


async def _status(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    command = ["status", "--porcelain=v1"] if args.get("short", True) else ["status"]
    result = await _run_checked(ctx, command, output_kb=256, failed_output={"status": ""})
    return _succeeded(result, command, {}, text_key="status")


# git.diff -----------------------------------------------------------------------------------------

DIFF = define(
    name="git.diff",
    description="Return unified diff from git workspace.",
    scope=Scope.REPO,
    risk=RiskLevel.LOW,
    approval=False,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.GUARANTEED,
    timeout=30,
    output_kb=1024,
    properties={
        "staged": _BOOL | {"description": "Diff the index against HEAD (or base)"},
        "paths": _PATHS | {"description": "Limit the diff to these workspace paths"},
        "base": _STRING | {"description": "Revision to diff against"},
    },
    outputs={"diff": _STRING, "command": _COMMAND},
    path_fields=[PathField(field="paths", multi=True)],
    preconditions=["workspace must contain a git repository"],
    postconditions=["no repository mutation"],
    examples=[{"staged": False}],
)


async def _diff(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    paths = await _checked_paths(ctx, args.get("paths"))
    command = ["diff", "--no-color", "--no-ext-diff"]
    if args.get("staged"):
        command.append("--staged")
    if (args.get("base") or "").strip():
        command += ["--end-of-options", _checked_ref(ctx, args["base"], "base")]
    command += ["--", *paths]
    # Outside a repository `git diff` falls back to --no-index; ask git for the repository first.
    await _run_checked(ctx, ["rev-parse", "--git-dir"], output_kb=16, failed_output={"diff": ""})
    result = await _run_checked(ctx, command, output_kb=1024, failed_output={"diff": ""})
    return _succeeded(result, command, {}, text_key="diff")


# git.apply_patch ----------------------------------------------------------------------------------

APPLY_PATCH = define(
    name="git.apply_patch",
    description="Apply a unified diff patch using git apply.",
    scope=Scope.REPO,
    risk=RiskLevel.MEDIUM,
    approval=True,
    side_effects=SideEffects.REVERSIBLE,
    idempotency=Idempotency.BEST_EFFORT,
    timeout=45,
    output_kb=512,
    properties={
        "patch": {"type": "string", "minLength": 1, "maxLength": PATCH_MAX_BYTES},
        "check": _BOOL | {"description": "Only check that the patch applies; change nothing"},
    },
    required=["patch"],
    outputs={
        "applied": _BOOL,
        "checked": _BOOL,
        "changed_paths": {"type": "array", "items": _STRING},
        "output": _STRING,
        "command": _COMMAND,
    },
    cost=CostHint.MEDIUM,
    preconditions=["workspace must contain a git repository"],
    postconditions=["working tree may change"],
    examples=[{"patch": "--- a/x.txt\n+++ b/x.txt\n@@ -1 +1 @@\n-old\n+new\n", "check": True}],
)


async def _apply_patch(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    patch: str = args["patch"]
    check = bool(args.get("check"))
    paths = patch_paths(patch)
    if not paths:
        raise invalid_argument("patch has no file headers (--- / +++ lines)")
    for path in paths:
        await ctx.path(path, follow_final=False)
    failed = {"applied": False, "checked": check, "changed_paths": paths}
    # The files git itself would touch (`--numstat` parses and applies nothing), which also covers
    # `diff --git` entries without ---/+++ lines.
    numstat = ["apply", "--numstat", "-z", "-"]
    stat = await _run_checked(
        ctx, numstat, output_kb=4096, failed_output=failed, stdin=patch.encode("utf-8")
    )
    records = (record.split("\t", 2) for record in stat.output.split("\0"))
    for fields in records:
        if len(fields) == 3 and fields[2]:
            await ctx.path(fields[2], follow_final=False)
    command = ["apply", "--whitespace=nowarn", *(["--check"] if check else []), "-"]
    result = await _run_checked(
        ctx, command, output_kb=512, failed_output=failed, stdin=patch.encode("utf-8")
    )
    output = {"applied": not check, "checked": check, "changed_paths": paths}
    return _succeeded(result, command, output)


# git.checkout -------------------------------------------------------------------------------------

CHECKOUT = define(
    name="git.checkout",
    description="Checkout a branch or ref, optionally creating a new branch.",
    scope=Scope.REPO,
    risk=RiskLevel.MEDIUM,
    approval=False,
    side_effects=SideEffects.REVERSIBLE,
    idempotency=Idempotency.BEST_EFFORT,
    timeout=30,
    output_kb=512,
    properties={
        "ref": _STRING | {"description": "Branch, tag or commit (the new branch with create)"},
        "create": _BOOL | {"description": "Create branch `ref` (at start_point) and switch to it"},
        "start_point": _STRING | {"description": "Where the new branch starts (needs create)"},
        "force": _BOOL | {"description": "Discard local changes that would block the checkout"},
    },
    required=["ref"],
    outputs={"ref": _STRING, "created": _BOOL, "output": _STRING, "command": _COMMAND},
    arg_fields=[_ref_rule("ref"), _ref_rule("start_point")],
    cost=CostHint.MEDIUM,
    preconditions=["workspace must contain a git repository"],
    postconditions=["checked out ref may change working tree"],
    examples=[
        {"ref": "feature/new-api"},
        {"ref": "release-2026-02", "create": True, "start_point": "origin/main"},
    ],
)


async def _checkout(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    ref = _checked_ref(ctx, args["ref"], "ref")
    create = bool(args.get("create"))
    start_point = (args.get("start_point") or "").strip()
    if start_point:
        if not create:
            raise invalid_argument("start_point needs create=true")
        start_point = _checked_ref(ctx, start_point, "start_point")
    # `git checkout` has no --end-of-options; names never start with '-', and `--` ends the
    # revisions so a file named like the ref is not taken instead.
    command = ["checkout", *(["--force"] if args.get("force") else [])]
    command += ["-b", ref, *([start_point] if start_point else [])] if create else [ref]
    command.append("--")
    failed = {"ref": ref, "created": False}
    result = await _run_checked(ctx, command, output_kb=512, failed_output=failed)
    return _succeeded(result, command, {"ref": ref, "created": create})


# git.log ------------------------------------------------------------------------------------------

LOG = define(
    name="git.log",
    description="List commit history for a ref with bounded output.",
    scope=Scope.REPO,
    risk=RiskLevel.LOW,
    approval=False,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.GUARANTEED,
    timeout=20,
    output_kb=1024,
    properties={
        "ref": _STRING | {"description": "Revision or range (default HEAD)"},
        "max_count": {"type": "integer", "minimum": 1, "maximum": LOG_MAX}
        | {"description": f"Default {LOG_DEFAULT}"},
    },
    outputs={
        "ref": _STRING,
        "count": {"type": "integer"},
        "entries": {"type": "array", "items": {"type": "object"}},
        "command": _COMMAND,
    },
    arg_fields=[_ref_rule("ref")],
    preconditions=["workspace must contain a git repository"],
    postconditions=["no repository mutation"],
    examples=[{"ref": "HEAD", "max_count": 20}],
)

_LOG_FORMAT = "--pretty=format:%H%x1f%an%x1f%ae%x1f%ad%x1f%s%x1f%P"


def parse_log(text: str) -> list[dict[str, Any]]:
    """Records of `git log -z` with the unit-separated fields of `_LOG_FORMAT`."""
    entries: list[dict[str, Any]] = []
    for record in text.split("\0"):
        fields = record.strip("\n").split("\x1f")
        if len(fields) != 6:
            continue
        commit, name, email, date, subject, parents = fields
        entries.append(
            {
                "commit": commit,
                "hash": commit,
                "author": f"{name} <{email}>",
                "author_name": name,
                "author_email": email,
                "date": date,
                "subject": subject,
                "parents": parents.split(),
            }
        )
    return entries


async def _log(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    ref = _checked_ref(ctx, args.get("ref") or "HEAD", "ref")
    count = args.get("max_count", LOG_DEFAULT)
    command = [
        "log",
        "-z",
        "--no-color",
        "--date=iso-strict",
        f"--max-count={count}",
        _LOG_FORMAT,
        "--end-of-options",
        ref,
        "--",
    ]
    failed = {"ref": ref, "count": 0, "entries": []}
    result = await _run_checked(ctx, command, output_kb=1024, failed_output=failed)
    entries = parse_log(mask_credentials(result.output))
    output = {"command": _command(command), "ref": ref, "count": len(entries), "entries": entries}
    return ToolResult(output=output, logs=_masked_logs(result.logs))


# git.show -----------------------------------------------------------------------------------------

SHOW = define(
    name="git.show",
    description="Show commit details or file content at a ref.",
    scope=Scope.REPO,
    risk=RiskLevel.LOW,
    approval=False,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.GUARANTEED,
    timeout=30,
    output_kb=1024,
    properties={
        "ref": _STRING | {"description": "Revision to show (default HEAD)"},
        "path": {"type": "string", "maxLength": 4096, "description": "Limit to this path"},
        "stat": _BOOL | {"description": "Include the diffstat (default true)"},
        "patch": _BOOL | {"description": "Include the patch (default true)"},
    },
    outputs={"ref": _STRING, "path": _STRING, "show": _STRING, "command": _COMMAND},
    path_fields=[PathField(field="path")],
    arg_fields=[_ref_rule("ref")],
    preconditions=["workspace must contain a git repository"],
    postconditions=["no repository mutation"],
    examples=[{"ref": "HEAD~1"}, {"ref": "HEAD", "path": "README.md", "patch": False}],
)


async def _show(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    ref = _checked_ref(ctx, args.get("ref") or "HEAD", "ref")
    paths = await _checked_paths(ctx, [args["path"]] if args.get("path") else [])
    stat, patch = args.get("stat", True), args.get("patch", True)
    command = ["show", "--no-color", "--no-ext-diff"]
    if stat:
        command.append("--stat")
    if patch:
        command.append("--patch")
    if not stat and not patch:
        command += ["--pretty=fuller", "--no-patch"]
    command += ["--end-of-options", ref, "--", *paths]
    path = paths[0] if paths else ""
    failed = {"ref": ref, "path": path, "show": ""}
    result = await _run_checked(ctx, command, output_kb=1024, failed_output=failed)
    return _succeeded(result, command, {"ref": ref, "path": path}, text_key="show")


# git.branch_list ----------------------------------------------------------------------------------

BRANCH_LIST = define(
    name="git.branch_list",
    description="List local and/or remote branches.",
    scope=Scope.REPO,
    risk=RiskLevel.LOW,
    approval=False,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.GUARANTEED,
    timeout=20,
    output_kb=512,
    properties={
        "all": _BOOL | {"description": "Local and remote-tracking branches"},
        "remotes": _BOOL | {"description": "Remote-tracking branches only"},
    },
    outputs={
        "count": {"type": "integer"},
        "branches": {"type": "array", "items": {"type": "object"}},
        "command": _COMMAND,
    },
    preconditions=["workspace must contain a git repository"],
    postconditions=["no repository mutation"],
    examples=[{"all": True}],
)

_BRANCH_FORMAT = "--format=%(refname:short)%00%(upstream:short)%00%(objectname)%00%(HEAD)"


def parse_branches(text: str) -> list[dict[str, Any]]:
    branches: list[dict[str, Any]] = []
    for line in text.splitlines():
        fields = line.split("\0")
        if len(fields) != 4 or not fields[0].strip():
            continue
        name, upstream, commit, head = fields
        branches.append(
            {"name": name, "upstream": upstream, "commit": commit, "current": head == "*"}
        )
    return branches


async def _branch_list(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    command = ["branch", "--list", "--no-color", _BRANCH_FORMAT]
    if args.get("all"):
        command.append("--all")
    elif args.get("remotes"):
        command.append("--remotes")
    failed: dict[str, Any] = {"count": 0, "branches": []}
    result = await _run_checked(ctx, command, output_kb=512, failed_output=failed)
    branches = parse_branches(mask_credentials(result.output))
    output = {"command": _command(command), "count": len(branches), "branches": branches}
    return ToolResult(output=output, logs=_masked_logs(result.logs))


# git.commit ---------------------------------------------------------------------------------------

COMMIT = define(
    name="git.commit",
    description="Create a commit from staged changes or selected paths.",
    scope=Scope.REPO,
    risk=RiskLevel.MEDIUM,
    approval=True,
    side_effects=SideEffects.IRREVERSIBLE,
    idempotency=Idempotency.NONE,
    timeout=30,
    output_kb=512,
    properties={
        "message": _STRING,
        "all": _BOOL | {"description": "Stage every change (new files included) first"},
        "paths": _PATHS | {"description": "Stage and commit only these paths"},
    },
    required=["message"],
    outputs={"committed": _BOOL, "commit": _STRING, "output": _STRING, "command": _COMMAND},
    path_fields=[PathField(field="paths", multi=True)],
    arg_fields=[ArgField(field="message", max_length=MESSAGE_MAX_CHARS, deny_characters=["\x00"])],
    cost=CostHint.MEDIUM,
    preconditions=["workspace must contain a git repository and staged changes"],
    postconditions=["new commit may be created"],
    examples=[{"message": "feat: add workspace policy guard", "all": True}],
)


async def _commit(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    message: str = args["message"]
    if not message.strip():
        raise invalid_argument("message must not be empty")
    if "\x00" in message:
        raise invalid_argument("message contains a NUL character")
    paths = await _checked_paths(ctx, args.get("paths"))
    if args.get("all") and paths:
        raise invalid_argument("all and paths cannot be combined")
    identity = commit_identity(ctx.session)
    failed = {"committed": False, "commit": ""}
    if args.get("all"):
        await _run_checked(ctx, ["add", "--all"], output_kb=512, failed_output=failed)
    elif paths:
        await _run_checked(ctx, ["add", "--", *paths], output_kb=512, failed_output=failed)
    command = ["commit", f"--message={message}", *(["--", *paths] if paths else [])]
    result = await _run_checked(
        ctx, command, output_kb=512, failed_output=failed, identity=identity
    )
    head = await _run_checked(
        ctx, ["rev-parse", "--verify", "HEAD"], output_kb=16, failed_output=failed
    )
    return _succeeded(result, command, {"committed": True, "commit": head.output.strip()})


# git.push / git.fetch / git.pull ------------------------------------------------------------------


def _remote_properties(extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "remote": _STRING | {"description": f"Remote name or URL (default {DEFAULT_REMOTE})"},
        "refspec": _STRING | {"description": "Refspec, e.g. HEAD:refs/heads/feature/x"},
        **extra,
    }


def _remote_outputs(done_key: str) -> dict[str, Any]:
    return {
        "remote": _STRING,
        "refspec": _STRING,
        done_key: _BOOL,
        "output": _STRING,
        "command": _COMMAND,
    }


_REMOTE_PRECONDITIONS = ["remote and refspec must be allowlisted by metadata policy"]

PUSH = define(
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
    properties=_remote_properties(
        {
            "set_upstream": _BOOL | {"description": "Record the remote branch as upstream"},
            "force_with_lease": _BOOL | {"description": "Force only over the expected remote ref"},
        }
    ),
    outputs=_remote_outputs("pushed"),
    arg_fields=_REMOTE_RULES,
    cost=CostHint.HIGH,
    preconditions=_REMOTE_PRECONDITIONS,
    postconditions=["remote repository may be mutated"],
    examples=[{"remote": "origin", "refspec": "HEAD:refs/heads/feature/new-api"}],
)

FETCH = define(
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
    properties=_remote_properties(
        {
            "prune": _BOOL | {"description": "Remove remote-tracking refs that no longer exist"},
            "tags": _BOOL | {"description": "Fetch all tags"},
        }
    ),
    outputs=_remote_outputs("fetched"),
    arg_fields=_REMOTE_RULES,
    cost=CostHint.MEDIUM,
    preconditions=_REMOTE_PRECONDITIONS,
    postconditions=["remote-tracking refs may change"],
    examples=[{"remote": "origin", "refspec": "refs/heads/main", "prune": True}],
)

PULL = define(
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
    properties=_remote_properties(
        {"rebase": _BOOL | {"description": "Rebase onto the fetched branch instead of merging"}}
    ),
    outputs=_remote_outputs("pulled"),
    arg_fields=_REMOTE_RULES,
    cost=CostHint.MEDIUM,
    preconditions=_REMOTE_PRECONDITIONS,
    postconditions=["local branch may change"],
    examples=[{"remote": "origin", "refspec": "main", "rebase": True}],
)


async def _remote_command(
    ctx: ToolContext,
    args: dict[str, Any],
    *,
    subcommand: str,
    flags: list[str],
    done_key: str,
    identity: tuple[str, str] | None = None,
) -> ToolResult:
    remote = _option_safe(args.get("remote") or "", "remote") or DEFAULT_REMOTE
    if not remote_allowed(ctx.session, remote):
        raise policy_denied("remote outside allowlist")
    refspec = _option_safe(args.get("refspec") or "", "refspec")
    if not refspec_allowed(ctx.session, refspec):
        raise policy_denied("refspec outside allowlist")
    command = [subcommand, *flags, "--end-of-options", remote, *([refspec] if refspec else [])]
    shown = {"remote": mask_credentials(remote), "refspec": refspec}
    result = await _run_checked(
        ctx,
        command,
        output_kb=1024,
        failed_output=shown | {done_key: False},
        identity=identity,
    )
    return _succeeded(result, command, shown | {done_key: True})


async def _push(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    flags = [
        *(["--set-upstream"] if args.get("set_upstream") else []),
        *(["--force-with-lease"] if args.get("force_with_lease") else []),
    ]
    return await _remote_command(ctx, args, subcommand="push", flags=flags, done_key="pushed")


async def _fetch(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    flags = [
        *(["--prune"] if args.get("prune") else []),
        *(["--tags"] if args.get("tags") else []),
    ]
    return await _remote_command(ctx, args, subcommand="fetch", flags=flags, done_key="fetched")


async def _pull(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    # Explicit merge or rebase: without one, git 2.27+ refuses divergent branches.
    flags = ["--rebase" if args.get("rebase") else "--no-rebase", "--no-edit"]
    return await _remote_command(
        ctx,
        args,
        subcommand="pull",
        flags=flags,
        done_key="pulled",
        identity=commit_identity(ctx.session),
    )


TOOLS: list[Tool] = [
    Tool(STATUS, _status),
    Tool(DIFF, _diff),
    Tool(APPLY_PATCH, _apply_patch),
    Tool(CHECKOUT, _checkout),
    Tool(LOG, _log),
    Tool(SHOW, _show),
    Tool(BRANCH_LIST, _branch_list),
    Tool(COMMIT, _commit),
    Tool(PUSH, _push),
    Tool(FETCH, _fetch),
    Tool(PULL, _pull),
]
