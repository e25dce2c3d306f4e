"""fs.* — file tools on the session workspace (contract §4.2, §4.3, §13).

Every path goes through the jail (`ToolContext.path`) and every file operation through the
session's `WorkspaceRuntime`, which opens files without following a final symlink, so a symlink
swapped in after the check is not followed either.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import re
from datetime import UTC, datetime
from typing import Any

import re2

from serve_app.domain.capability import Idempotency, PathField, RiskLevel, Scope, SideEffects
from serve_app.domain.errors import (
    ErrorCode,
    ServiceError,
    invalid_argument,
    not_found,
    policy_denied,
)
from serve_app.domain.paths import WorkspacePath, clean
from serve_app.runtime.interface import DEFAULT_OUTPUT_LIMIT, CommandResult, FileInfo
from serve_app.tools.base import Tool, ToolContext, ToolFailed, ToolResult, define
from serve_app.tools.git_runner import is_git_path, repository, run_git

READ_DEFAULT_BYTES = 64 * 1024
READ_MAX_BYTES = 1024 * 1024
WRITE_MAX_BYTES = 1024 * 1024
LIST_DEFAULT, LIST_MAX = 200, 1000
SEARCH_DEFAULT, SEARCH_MAX = 200, 2000
SEARCH_PATTERN_MAX = 1024
SNIPPET_MAX_CHARS = 512
PATCH_MAX_BYTES = 1024 * 1024
_MODE = re.compile(r"^0?[0-7]{3}$")

_STRING = {"type": "string"}
_BOOL = {"type": "boolean"}
_PATH = {"type": "string", "maxLength": 4096}


def _int(minimum: int, maximum: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": minimum, "maximum": maximum}


def _outside_repository(path: WorkspacePath) -> WorkspacePath:
    """`path`, unless it is in a `.git` directory: what git reads as the repository (its
    config, hooks, objects) changes only through the git.* tools."""
    if is_git_path(path):
        raise policy_denied(
            f"fs tools do not change .git directories ({path.requested}); use the git.* tools"
        )
    return path


def _mode_text(mode: int) -> str:
    return f"{mode:04o}"


def _timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _entry(info: FileInfo) -> dict[str, Any]:
    return {
        "path": info.path,
        "type": info.kind,
        "size_bytes": info.size_bytes,
        "mode": _mode_text(info.mode),
        "modified_at": _timestamp(info.modified_at),
    }


# fs.list ----------------------------------------------------------------------------------------

LIST = define(
    name="fs.list",
    description="List files/directories under the session workspace.",
    scope=Scope.WORKSPACE,
    risk=RiskLevel.LOW,
    approval=False,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.GUARANTEED,
    timeout=15,
    output_kb=256,
    properties={
        "path": _PATH | {"description": "Directory to list, relative to the workspace (default .)"},
        "recursive": _BOOL | {"description": "Descend into subdirectories (.git is not entered)"},
        "max_entries": _int(1, LIST_MAX) | {"description": f"Default {LIST_DEFAULT}"},
    },
    outputs={
        "entries": {"type": "array"},
        "count": {"type": "integer"},
        "truncated": {"type": "boolean"},
    },
    path_fields=[PathField(field="path")],
    examples=[{"path": ".", "recursive": False}],
)


async def _list(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    target = await ctx.path(args.get("path") or ".")
    listing = await ctx.runtime.list_dir(
        target,
        recursive=bool(args.get("recursive")),
        max_entries=args.get("max_entries", LIST_DEFAULT),
    )
    entries = [_entry(info) for info in listing.entries]
    return ToolResult(
        output={"entries": entries, "count": len(entries), "truncated": listing.truncated}
    )


# fs.read_file -----------------------------------------------------------------------------------

READ_FILE = define(
    name="fs.read_file",
    description="Read a text or binary file from workspace.",
    scope=Scope.WORKSPACE,
    risk=RiskLevel.LOW,
    approval=False,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.GUARANTEED,
    timeout=20,
    output_kb=1024,
    properties={
        "path": _PATH,
        "max_bytes": _int(1, READ_MAX_BYTES) | {"description": f"Default {READ_DEFAULT_BYTES}"},
    },
    required=["path"],
    outputs={
        "path": _STRING,
        "encoding": _STRING,
        "content": _STRING,
        "size_bytes": {"type": "integer"},
        "truncated": _BOOL,
    },
    path_fields=[PathField(field="path")],
    examples=[{"path": "README.md"}],
    aliases=["fs.read"],
)


async def _read_file(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    target = await ctx.path(args["path"])
    content = await ctx.runtime.read_file(
        target, max_bytes=args.get("max_bytes", READ_DEFAULT_BYTES)
    )
    data, truncated = content.data, content.truncated
    try:
        decoder = codecs.getincrementaldecoder("utf-8")()
        text = decoder.decode(data, final=not truncated)
        encoding, output = "utf8", text
    except UnicodeDecodeError:
        encoding, output = "base64", base64.b64encode(data).decode("ascii")
    return ToolResult(
        output={
            "path": target.requested,
            "encoding": encoding,
            "content": output,
            "size_bytes": content.size_bytes,
            "truncated": truncated,
        }
    )


# fs.write_file ----------------------------------------------------------------------------------

WRITE_FILE = define(
    name="fs.write_file",
    description="Write a file in workspace using UTF-8 or base64 payload.",
    scope=Scope.WORKSPACE,
    risk=RiskLevel.MEDIUM,
    approval=True,
    side_effects=SideEffects.REVERSIBLE,
    idempotency=Idempotency.BEST_EFFORT,
    timeout=20,
    output_kb=256,
    properties={
        "path": _PATH,
        "content": _STRING,
        "encoding": {"type": "string", "enum": ["utf8", "base64"]},
        "create_parents": _BOOL | {"description": "Default true"},
    },
    required=["path", "content"],
    outputs={"path": _STRING, "bytes_written": {"type": "integer"}, "sha256": _STRING},
    path_fields=[PathField(field="path")],
    examples=[{"path": "notes/todo.txt", "content": "hello\n", "create_parents": True}],
    aliases=["fs.write"],
)


def _decode_content(args: dict[str, Any]) -> bytes:
    if args.get("encoding", "utf8") == "base64":
        try:
            data = base64.b64decode(args["content"], validate=True)
        except (binascii.Error, ValueError):
            raise invalid_argument("content is not valid base64") from None
    else:
        data = args["content"].encode("utf-8", "surrogatepass")
    if len(data) > WRITE_MAX_BYTES:
        raise invalid_argument(f"content exceeds {WRITE_MAX_BYTES} bytes")
    return data


async def _write_file(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    data = _decode_content(args)
    target = _outside_repository(await ctx.path(args["path"]))
    await ctx.runtime.write_file(target, data, create_parents=args.get("create_parents", True))
    return ToolResult(
        output={
            "path": target.requested,
            "bytes_written": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
    )


# fs.mkdir ---------------------------------------------------------------------------------------

MKDIR = define(
    name="fs.mkdir",
    description="Create a directory inside workspace.",
    scope=Scope.WORKSPACE,
    risk=RiskLevel.MEDIUM,
    approval=False,
    side_effects=SideEffects.REVERSIBLE,
    idempotency=Idempotency.BEST_EFFORT,
    timeout=20,
    output_kb=64,
    properties={
        "path": _PATH,
        "create_parents": _BOOL | {"description": "Default true"},
        "mode": {"type": "string", "pattern": "^0?[0-7]{3}$", "description": "Octal, default 0755"},
        "exist_ok": _BOOL | {"description": "Default true"},
    },
    required=["path"],
    outputs={"path": _STRING, "created": _BOOL, "mode": _STRING},
    path_fields=[PathField(field="path")],
    examples=[{"path": "build/out"}],
)


async def _mkdir(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    target = _outside_repository(await ctx.path(args["path"]))
    mode_text = args.get("mode", "0755")
    if not _MODE.fullmatch(mode_text):
        raise invalid_argument("mode must be an octal permission such as 0755")
    created = await ctx.runtime.mkdir(
        target,
        parents=args.get("create_parents", True),
        mode=int(mode_text, 8),
        exist_ok=args.get("exist_ok", True),
    )
    info = await ctx.runtime.stat(target)
    if info is None:
        raise not_found(f"path not found: {target.requested}")
    return ToolResult(
        output={"path": target.requested, "created": created, "mode": _mode_text(info.mode)}
    )


# fs.move ----------------------------------------------------------------------------------------

_SOURCE_DEST = {
    "source_path": _PATH,
    "destination_path": _PATH,
    "overwrite": _BOOL | {"description": "Replace an existing destination (default false)"},
    "create_parents": _BOOL
    | {"description": "Create missing parents of the destination (default true)"},
}

MOVE = define(
    name="fs.move",
    description="Move or rename a file/directory inside workspace.",
    scope=Scope.WORKSPACE,
    risk=RiskLevel.MEDIUM,
    approval=False,
    side_effects=SideEffects.REVERSIBLE,
    idempotency=Idempotency.BEST_EFFORT,
    timeout=20,
    output_kb=64,
    properties=_SOURCE_DEST,
    required=["source_path", "destination_path"],
    outputs={"source_path": _STRING, "destination_path": _STRING, "moved": _BOOL},
    path_fields=[PathField(field="source_path"), PathField(field="destination_path")],
    examples=[{"source_path": "a.txt", "destination_path": "b.txt"}],
)


async def _move(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    source = _outside_repository(await ctx.path(args["source_path"], follow_final=False))
    destination = _outside_repository(await ctx.path(args["destination_path"], follow_final=False))
    await ctx.runtime.move(
        source,
        destination,
        overwrite=args.get("overwrite", False),
        create_parents=args.get("create_parents", True),
    )
    return ToolResult(
        output={
            "source_path": source.requested,
            "destination_path": destination.requested,
            "moved": True,
        }
    )


# fs.copy ----------------------------------------------------------------------------------------

COPY = define(
    name="fs.copy",
    description="Copy a file/directory inside workspace.",
    scope=Scope.WORKSPACE,
    risk=RiskLevel.MEDIUM,
    approval=False,
    side_effects=SideEffects.REVERSIBLE,
    idempotency=Idempotency.BEST_EFFORT,
    timeout=25,
    output_kb=64,
    properties=_SOURCE_DEST
    | {"recursive": _BOOL | {"description": "Required to copy a directory"}},
    required=["source_path", "destination_path"],
    outputs={"source_path": _STRING, "destination_path": _STRING, "copied": _BOOL, "type": _STRING},
    path_fields=[PathField(field="source_path"), PathField(field="destination_path")],
    examples=[{"source_path": "src", "destination_path": "src-backup", "recursive": True}],
)


async def _copy(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    source = await ctx.path(args["source_path"], follow_final=False)
    destination = _outside_repository(await ctx.path(args["destination_path"], follow_final=False))
    kind = await ctx.runtime.copy(
        source,
        destination,
        recursive=args.get("recursive", False),
        overwrite=args.get("overwrite", False),
        create_parents=args.get("create_parents", True),
    )
    return ToolResult(
        output={
            "source_path": source.requested,
            "destination_path": destination.requested,
            "copied": True,
            "type": kind,
        }
    )


# fs.delete --------------------------------------------------------------------------------------

DELETE = define(
    name="fs.delete",
    description="Delete a file/directory inside workspace.",
    scope=Scope.WORKSPACE,
    risk=RiskLevel.HIGH,
    approval=True,
    side_effects=SideEffects.IRREVERSIBLE,
    idempotency=Idempotency.BEST_EFFORT,
    timeout=20,
    output_kb=64,
    properties={
        "path": _PATH,
        "recursive": _BOOL | {"description": "Required to delete a directory"},
        "force": _BOOL | {"description": "A missing path is not an error"},
    },
    required=["path"],
    outputs={"path": _STRING, "deleted": _BOOL, "existed": _BOOL},
    path_fields=[PathField(field="path")],
    examples=[{"path": "tmp/old.log"}],
)


async def _delete(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    target = _outside_repository(await ctx.path(args["path"], follow_final=False))
    existed = await ctx.runtime.delete(
        target, recursive=args.get("recursive", False), missing_ok=args.get("force", False)
    )
    return ToolResult(output={"path": target.requested, "deleted": existed, "existed": existed})


# fs.stat ----------------------------------------------------------------------------------------

STAT = define(
    name="fs.stat",
    description="Get metadata (type, size, mode, mtime) for a workspace path.",
    scope=Scope.WORKSPACE,
    risk=RiskLevel.LOW,
    approval=False,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.GUARANTEED,
    timeout=15,
    output_kb=64,
    properties={"path": _PATH},
    required=["path"],
    outputs={
        "path": _STRING,
        "exists": _BOOL,
        "type": _STRING,
        "size_bytes": {"type": "integer"},
        "mode": _STRING,
        "modified_at": _STRING,
    },
    path_fields=[PathField(field="path")],
    examples=[{"path": "go.mod"}],
)


async def _stat(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    target = await ctx.path(args["path"], follow_final=False)
    info = await ctx.runtime.stat(target)
    if info is None:
        return ToolResult(output={"path": target.requested, "exists": False})
    return ToolResult(output=_entry(info) | {"path": target.requested, "exists": True})


# fs.patch ---------------------------------------------------------------------------------------

PATCH = define(
    name="fs.patch",
    description="Apply a unified diff patch to files in the workspace.",
    scope=Scope.WORKSPACE,
    risk=RiskLevel.MEDIUM,
    approval=True,
    side_effects=SideEffects.REVERSIBLE,
    idempotency=Idempotency.BEST_EFFORT,
    timeout=45,
    output_kb=1024,
    properties={
        "unified_diff": {"type": "string", "minLength": 1, "maxLength": PATCH_MAX_BYTES},
        "strategy": {
            "type": "string",
            "enum": ["apply", "reject_on_conflict"],
            "description": "reject_on_conflict (default) applies all hunks or none; "
            "apply falls back to a three-way merge in git repositories",
        },
    },
    required=["unified_diff"],
    outputs={
        "applied": _BOOL,
        "strategy": _STRING,
        "changed_paths": {"type": "array"},
        "output": _STRING,
    },
    examples=[{"unified_diff": "--- a/x.txt\n+++ b/x.txt\n@@ -1 +1 @@\n-old\n+new\n"}],
)

_HEADER_PREFIXES = ("+++ ", "--- ", "rename from ", "rename to ", "copy from ", "copy to ")


def patch_paths(diff: str) -> list[str]:
    """Every file a unified diff names, as `git apply` (-p1) reads it: ---/+++ names lose their
    first component (a/, b/ or anything else); rename/copy names are taken as they are."""
    paths: set[str] = set()
    for line in diff.splitlines():
        prefix = next((p for p in _HEADER_PREFIXES if line.startswith(p)), None)
        if prefix is None:
            continue
        name = line[len(prefix) :].split("\t", 1)[0].strip()
        if len(name) >= 2 and name[0] == '"' and name[-1] == '"':
            name = name[1:-1]
        if name == "/dev/null" or not name:
            continue
        if prefix in ("+++ ", "--- ") and "/" in name:
            name = name.split("/", 1)[1]
        paths.add(clean(name))
    return sorted(paths)


def _apply_failed(result: CommandResult, strategy: str) -> ToolFailed:
    output = {"applied": False, "strategy": strategy, "changed_paths": [], "output": result.output}
    if result.timed_out:
        return ToolFailed(
            ErrorCode.TIMEOUT, "git apply timed out", exit_code=124, output=output, logs=result.logs
        )
    first = next((line for line in result.output.splitlines() if line.strip()), "git apply failed")
    return ToolFailed(
        ErrorCode.EXECUTION_FAILED,
        f"patch did not apply: {first}",
        exit_code=result.exit_code or 1,
        output=output,
        logs=result.logs,
    )


async def _git_targets(ctx: ToolContext, diff: str, strategy: str) -> list[str]:
    """The files `git apply` itself would touch (`--numstat -z` parses and applies nothing); this
    includes `diff --git` entries without ---/+++ lines, such as empty new files."""
    result = await run_git(
        ctx,
        ["apply", "--numstat", "-z", "-"],
        stdin=diff.encode("utf-8"),
        output_limit=4 * PATCH_MAX_BYTES,
    )
    if result.timed_out or result.exit_code != 0 or result.truncated:
        raise _apply_failed(result, strategy)
    records = (record.split("\t", 2) for record in result.output.split("\0"))
    return [fields[2] for fields in records if len(fields) == 3 and fields[2]]


async def _in_git_repository(ctx: ToolContext) -> bool:
    """Whether the workspace has a `.git`; one outside allowed_paths counts as none (a three-way
    apply would write its index)."""
    try:
        await ctx.path(".git", follow_final=False)
    except ServiceError:
        return False
    return await repository(ctx.runtime)


async def _patch(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    diff: str = args["unified_diff"]
    strategy = args.get("strategy", "reject_on_conflict")
    paths = patch_paths(diff)
    if not paths:
        raise invalid_argument("unified_diff has no file headers (--- / +++ lines)")
    for path in paths:
        _outside_repository(await ctx.path(path, follow_final=False))
    for path in await _git_targets(ctx, diff, strategy):
        _outside_repository(await ctx.path(path, follow_final=False))
    apply = ["apply", "--whitespace=nowarn"]
    if strategy == "apply" and await _in_git_repository(ctx):
        apply.append("--3way")
    apply.append("-")
    result = await run_git(
        ctx, apply, stdin=diff.encode("utf-8"), output_limit=DEFAULT_OUTPUT_LIMIT
    )
    if result.timed_out or result.exit_code != 0:
        raise _apply_failed(result, strategy)
    output = {
        "applied": True,
        "strategy": strategy,
        "changed_paths": paths,
        "output": result.output,
    }
    return ToolResult(output=output, logs=result.logs, exit_code=0)


# fs.search --------------------------------------------------------------------------------------

SEARCH = define(
    name="fs.search",
    description="Search file contents using regex pattern.",
    scope=Scope.WORKSPACE,
    risk=RiskLevel.LOW,
    approval=False,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.GUARANTEED,
    timeout=30,
    output_kb=512,
    properties={
        "path": _PATH | {"description": "File or directory to search (default .)"},
        "pattern": {
            "type": "string",
            "minLength": 1,
            "maxLength": SEARCH_PATTERN_MAX,
            "description": "RE2 regular expression (linear time; no backreferences)",
        },
        "max_results": _int(1, SEARCH_MAX) | {"description": f"Default {SEARCH_DEFAULT}"},
    },
    required=["pattern"],
    outputs={"matches": {"type": "array"}, "count": {"type": "integer"}, "truncated": _BOOL},
    path_fields=[PathField(field="path")],
    examples=[{"pattern": "func main", "path": "."}],
)


async def _search(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    try:
        regex = re2.compile(args["pattern"])
    except re2.error as exc:
        raise invalid_argument(f"invalid pattern: {exc}") from None
    target = await ctx.path(args.get("path") or ".")
    result = await ctx.runtime.search(
        target,
        lambda line: regex.search(line) is not None,
        max_results=args.get("max_results", SEARCH_DEFAULT),
        max_text_chars=SNIPPET_MAX_CHARS,
    )
    matches = [
        {"path": match.path, "line": match.line, "snippet": match.text} for match in result.matches
    ]
    return ToolResult(
        output={"matches": matches, "count": len(matches), "truncated": result.truncated}
    )


# registry ---------------------------------------------------------------------------------------


TOOLS: list[Tool] = [
    Tool(LIST, _list),
    Tool(READ_FILE, _read_file),
    Tool(WRITE_FILE, _write_file),
    Tool(MKDIR, _mkdir),
    Tool(MOVE, _move),
    Tool(COPY, _copy),
    Tool(DELETE, _delete),
    Tool(STAT, _stat),
    Tool(PATCH, _patch),
    Tool(SEARCH, _search),
]
