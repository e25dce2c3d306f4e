"""fs.* — file tools on the session workspace (contract §4.2, §4.3, §13).

Every path goes through the jail (`ToolContext.path`) and every file operation through the
session's `WorkspaceRuntime`, which opens paths from a handle on the workspace and never through
a symlink swapped in after the check.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import Field

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
from serve_app.tools.base import Tool, ToolContext, ToolFailed, ToolResult
from serve_app.tools.declare import Arguments, Output, WorkspacePathArg, bounded, tool
from serve_app.tools.fitting import leading
from serve_app.tools.git_runner import is_git_path, repository, run_git

READ_DEFAULT_BYTES = 64 * 1024
READ_MAX_BYTES = 1024 * 1024
WRITE_MAX_BYTES = 1024 * 1024
LIST_DEFAULT, LIST_MAX = 200, 1000
SEARCH_DEFAULT, SEARCH_MAX = 200, 2000
SEARCH_PATTERN_MAX = 1024
SNIPPET_MAX_CHARS = 512
PATCH_MAX_BYTES = 1024 * 1024
MODE_PATTERN = "^0?[0-7]{3}$"


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


class Entry(Output):
    path: str
    type: str
    size_bytes: int
    mode: str
    modified_at: str


def _entry(info: FileInfo) -> Entry:
    return Entry(
        path=info.path,
        type=info.kind,
        size_bytes=info.size_bytes,
        mode=_mode_text(info.mode),
        modified_at=_timestamp(info.modified_at),
    )


# fs.list ----------------------------------------------------------------------------------------


class ListArgs(Arguments):
    path: Annotated[
        WorkspacePathArg,
        Field(description="Directory to list, relative to the workspace (default .)"),
    ] = "."
    recursive: Annotated[
        bool, Field(description="Descend into subdirectories (.git is not entered)")
    ] = False
    max_entries: Annotated[int, bounded(1, LIST_MAX, f"Default {LIST_DEFAULT}")] = LIST_DEFAULT


class ListOutput(Output):
    entries: list[Entry]
    count: int
    truncated: bool


@tool(
    name="fs.list",
    description="List files/directories under the session workspace.",
    scope=Scope.WORKSPACE,
    risk=RiskLevel.LOW,
    approval=False,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.GUARANTEED,
    timeout=15,
    output_kb=256,
    path_fields=[PathField(field="path")],
    examples=[{"path": ".", "recursive": False}],
)
async def list_files(ctx: ToolContext, args: ListArgs) -> ToolResult[ListOutput]:
    target = await ctx.path(args.path or ".")
    listing = await ctx.runtime.list_dir(
        target, recursive=args.recursive, max_entries=args.max_entries
    )
    entries = [_entry(info) for info in listing.entries]
    return ToolResult(
        output=ListOutput(entries=entries, count=len(entries), truncated=listing.truncated)
    )


# fs.read_file -----------------------------------------------------------------------------------


class ReadFileArgs(Arguments):
    path: WorkspacePathArg
    max_bytes: Annotated[int, bounded(1, READ_MAX_BYTES, f"Default {READ_DEFAULT_BYTES}")] = (
        READ_DEFAULT_BYTES
    )


class ReadFileOutput(Output):
    path: str
    encoding: Literal["utf8", "base64"]
    content: str
    size_bytes: int
    truncated: bool


@tool(
    name="fs.read_file",
    description="Read a text or binary file from workspace.",
    scope=Scope.WORKSPACE,
    risk=RiskLevel.LOW,
    approval=False,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.GUARANTEED,
    timeout=20,
    output_kb=1024,
    path_fields=[PathField(field="path")],
    examples=[{"path": "README.md"}],
    aliases=["fs.read"],
)
async def read_file(ctx: ToolContext, args: ReadFileArgs) -> ToolResult[ReadFileOutput]:
    target = await ctx.path(args.path)
    # What fits the output limit: text as it is, binary content a quarter less (base64).
    fits = ctx.command_output_limit
    content = await ctx.runtime.read_file(target, max_bytes=min(args.max_bytes, fits))
    data, truncated = content.data, content.truncated
    encoding: Literal["utf8", "base64"]
    try:
        decoder = codecs.getincrementaldecoder("utf-8")()
        text = decoder.decode(data, final=not truncated)
        encoding, output = "utf8", text
    except UnicodeDecodeError:
        if len(data) > fits * 3 // 4:
            data, truncated = data[: fits * 3 // 4], True
        encoding, output = "base64", base64.b64encode(data).decode("ascii")
    return ToolResult(
        output=ReadFileOutput(
            path=target.requested,
            encoding=encoding,
            content=output,
            size_bytes=content.size_bytes,
            truncated=truncated,
        )
    )


# fs.write_file ----------------------------------------------------------------------------------


class WriteFileArgs(Arguments):
    path: WorkspacePathArg
    content: str
    encoding: Literal["utf8", "base64"] = "utf8"
    create_parents: Annotated[bool, Field(description="Default true")] = True


class WriteFileOutput(Output):
    path: str
    bytes_written: int
    sha256: str


def _decode_content(args: WriteFileArgs) -> bytes:
    if args.encoding == "base64":
        try:
            data = base64.b64decode(args.content, validate=True)
        except (binascii.Error, ValueError):
            raise invalid_argument("content is not valid base64") from None
    else:
        data = args.content.encode("utf-8", "surrogatepass")
    if len(data) > WRITE_MAX_BYTES:
        raise invalid_argument(f"content exceeds {WRITE_MAX_BYTES} bytes")
    return data


@tool(
    name="fs.write_file",
    description="Write a file in workspace using UTF-8 or base64 payload.",
    scope=Scope.WORKSPACE,
    risk=RiskLevel.MEDIUM,
    approval=True,
    side_effects=SideEffects.REVERSIBLE,
    idempotency=Idempotency.BEST_EFFORT,
    timeout=20,
    output_kb=256,
    path_fields=[PathField(field="path")],
    examples=[{"path": "notes/todo.txt", "content": "hello\n", "create_parents": True}],
    aliases=["fs.write"],
)
async def write_file(ctx: ToolContext, args: WriteFileArgs) -> ToolResult[WriteFileOutput]:
    data = _decode_content(args)
    target = _outside_repository(await ctx.path(args.path))
    await ctx.runtime.write_file(target, data, create_parents=args.create_parents)
    return ToolResult(
        output=WriteFileOutput(
            path=target.requested,
            bytes_written=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        )
    )


# fs.mkdir ---------------------------------------------------------------------------------------


class MkdirArgs(Arguments):
    path: WorkspacePathArg
    create_parents: Annotated[bool, Field(description="Default true")] = True
    mode: Annotated[str, Field(pattern=MODE_PATTERN, description="Octal, default 0755")] = "0755"
    exist_ok: Annotated[bool, Field(description="Default true")] = True


class MkdirOutput(Output):
    path: str
    created: bool
    mode: str


@tool(
    name="fs.mkdir",
    description="Create a directory inside workspace.",
    scope=Scope.WORKSPACE,
    risk=RiskLevel.MEDIUM,
    approval=False,
    side_effects=SideEffects.REVERSIBLE,
    idempotency=Idempotency.BEST_EFFORT,
    timeout=20,
    output_kb=64,
    path_fields=[PathField(field="path")],
    examples=[{"path": "build/out"}],
)
async def mkdir(ctx: ToolContext, args: MkdirArgs) -> ToolResult[MkdirOutput]:
    target = _outside_repository(await ctx.path(args.path))
    created = await ctx.runtime.mkdir(
        target, parents=args.create_parents, mode=int(args.mode, 8), exist_ok=args.exist_ok
    )
    info = await ctx.runtime.stat(target)
    if info is None:
        raise not_found(f"path not found: {target.requested}")
    return ToolResult(
        output=MkdirOutput(path=target.requested, created=created, mode=_mode_text(info.mode))
    )


# fs.move ----------------------------------------------------------------------------------------


class SourceDestinationArgs(Arguments):
    source_path: WorkspacePathArg
    destination_path: WorkspacePathArg
    overwrite: Annotated[
        bool, Field(description="Replace an existing destination (default false)")
    ] = False
    create_parents: Annotated[
        bool, Field(description="Create missing parents of the destination (default true)")
    ] = True


class MoveOutput(Output):
    source_path: str
    destination_path: str
    moved: bool


@tool(
    name="fs.move",
    description="Move or rename a file/directory inside workspace.",
    scope=Scope.WORKSPACE,
    risk=RiskLevel.MEDIUM,
    approval=False,
    side_effects=SideEffects.REVERSIBLE,
    idempotency=Idempotency.BEST_EFFORT,
    timeout=20,
    output_kb=64,
    path_fields=[PathField(field="source_path"), PathField(field="destination_path")],
    examples=[{"source_path": "a.txt", "destination_path": "b.txt"}],
)
async def move(ctx: ToolContext, args: SourceDestinationArgs) -> ToolResult[MoveOutput]:
    source = _outside_repository(await ctx.path(args.source_path, follow_final=False))
    destination = _outside_repository(await ctx.path(args.destination_path, follow_final=False))
    await ctx.runtime.move(
        source, destination, overwrite=args.overwrite, create_parents=args.create_parents
    )
    return ToolResult(
        output=MoveOutput(
            source_path=source.requested, destination_path=destination.requested, moved=True
        )
    )


# fs.copy ----------------------------------------------------------------------------------------


class CopyArgs(SourceDestinationArgs):
    recursive: Annotated[bool, Field(description="Required to copy a directory")] = False


class CopyOutput(Output):
    source_path: str
    destination_path: str
    copied: bool
    type: str


@tool(
    name="fs.copy",
    description="Copy a file/directory inside workspace.",
    scope=Scope.WORKSPACE,
    risk=RiskLevel.MEDIUM,
    approval=False,
    side_effects=SideEffects.REVERSIBLE,
    idempotency=Idempotency.BEST_EFFORT,
    timeout=25,
    output_kb=64,
    path_fields=[PathField(field="source_path"), PathField(field="destination_path")],
    examples=[{"source_path": "src", "destination_path": "src-backup", "recursive": True}],
)
async def copy(ctx: ToolContext, args: CopyArgs) -> ToolResult[CopyOutput]:
    source = await ctx.path(args.source_path, follow_final=False)
    destination = _outside_repository(await ctx.path(args.destination_path, follow_final=False))
    kind = await ctx.runtime.copy(
        source,
        destination,
        recursive=args.recursive,
        overwrite=args.overwrite,
        create_parents=args.create_parents,
    )
    return ToolResult(
        output=CopyOutput(
            source_path=source.requested,
            destination_path=destination.requested,
            copied=True,
            type=kind,
        )
    )


# fs.delete --------------------------------------------------------------------------------------


class DeleteArgs(Arguments):
    path: WorkspacePathArg
    recursive: Annotated[bool, Field(description="Required to delete a directory")] = False
    force: Annotated[bool, Field(description="A missing path is not an error")] = False


class DeleteOutput(Output):
    path: str
    deleted: bool
    existed: bool


@tool(
    name="fs.delete",
    description="Delete a file/directory inside workspace.",
    scope=Scope.WORKSPACE,
    risk=RiskLevel.HIGH,
    approval=True,
    side_effects=SideEffects.IRREVERSIBLE,
    idempotency=Idempotency.BEST_EFFORT,
    timeout=20,
    output_kb=64,
    path_fields=[PathField(field="path")],
    examples=[{"path": "tmp/old.log"}],
)
async def delete(ctx: ToolContext, args: DeleteArgs) -> ToolResult[DeleteOutput]:
    target = _outside_repository(await ctx.path(args.path, follow_final=False))
    existed = await ctx.runtime.delete(target, recursive=args.recursive, missing_ok=args.force)
    return ToolResult(output=DeleteOutput(path=target.requested, deleted=existed, existed=existed))


# fs.stat ----------------------------------------------------------------------------------------


class StatArgs(Arguments):
    path: WorkspacePathArg


class StatOutput(Output):
    path: str
    exists: bool
    type: str | None = None
    size_bytes: int | None = None
    mode: str | None = None
    modified_at: str | None = None


@tool(
    name="fs.stat",
    description="Get metadata (type, size, mode, mtime) for a workspace path.",
    scope=Scope.WORKSPACE,
    risk=RiskLevel.LOW,
    approval=False,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.GUARANTEED,
    timeout=15,
    output_kb=64,
    path_fields=[PathField(field="path")],
    examples=[{"path": "go.mod"}],
)
async def stat(ctx: ToolContext, args: StatArgs) -> ToolResult[StatOutput]:
    target = await ctx.path(args.path, follow_final=False)
    info = await ctx.runtime.stat(target)
    if info is None:
        return ToolResult(output=StatOutput(path=target.requested, exists=False))
    entry = _entry(info)
    return ToolResult(
        output=StatOutput(
            path=target.requested,
            exists=True,
            type=entry.type,
            size_bytes=entry.size_bytes,
            mode=entry.mode,
            modified_at=entry.modified_at,
        )
    )


# fs.patch ---------------------------------------------------------------------------------------

PatchStrategy = Literal["apply", "reject_on_conflict"]


class PatchArgs(Arguments):
    unified_diff: Annotated[str, Field(min_length=1, max_length=PATCH_MAX_BYTES)]
    strategy: Annotated[
        PatchStrategy,
        Field(
            description="reject_on_conflict (default) applies all hunks or none; "
            "apply falls back to a three-way merge in git repositories"
        ),
    ] = "reject_on_conflict"


class PatchOutput(Output):
    applied: bool
    strategy: str
    changed_paths: list[str]
    output: str


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
    output = PatchOutput(applied=False, strategy=strategy, changed_paths=[], output=result.output)
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


@tool(
    name="fs.patch",
    description="Apply a unified diff patch to files in the workspace.",
    scope=Scope.WORKSPACE,
    risk=RiskLevel.MEDIUM,
    approval=True,
    side_effects=SideEffects.REVERSIBLE,
    idempotency=Idempotency.BEST_EFFORT,
    timeout=45,
    output_kb=1024,
    examples=[{"unified_diff": "--- a/x.txt\n+++ b/x.txt\n@@ -1 +1 @@\n-old\n+new\n"}],
)
async def patch(ctx: ToolContext, args: PatchArgs) -> ToolResult[PatchOutput]:
    diff, strategy = args.unified_diff, args.strategy
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
    output = PatchOutput(applied=True, strategy=strategy, changed_paths=paths, output=result.output)
    return ToolResult(output=output, logs=result.logs, exit_code=0)


# fs.search --------------------------------------------------------------------------------------


class SearchArgs(Arguments):
    path: Annotated[
        WorkspacePathArg, Field(description="File or directory to search (default .)")
    ] = "."
    pattern: Annotated[
        str,
        Field(
            min_length=1,
            max_length=SEARCH_PATTERN_MAX,
            description="RE2 regular expression (linear time; no backreferences)",
        ),
    ]
    max_results: Annotated[int, bounded(1, SEARCH_MAX, f"Default {SEARCH_DEFAULT}")] = (
        SEARCH_DEFAULT
    )


class SearchMatch(Output):
    path: str
    line: int
    snippet: str


class SearchOutput(Output):
    matches: list[SearchMatch]
    count: int
    truncated: bool


@tool(
    name="fs.search",
    description="Search file contents using regex pattern.",
    scope=Scope.WORKSPACE,
    risk=RiskLevel.LOW,
    approval=False,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.GUARANTEED,
    timeout=30,
    output_kb=512,
    path_fields=[PathField(field="path")],
    examples=[{"pattern": "func main", "path": "."}],
)
async def search(ctx: ToolContext, args: SearchArgs) -> ToolResult[SearchOutput]:
    import re2  # only where searches run: making the catalog does not load it

    try:
        regex = re2.compile(args.pattern)
    except re2.error as exc:
        raise invalid_argument(f"invalid pattern: {exc}") from None
    target = await ctx.path(args.path or ".")
    result = await ctx.runtime.search(
        target,
        lambda line: regex.search(line) is not None,
        max_results=args.max_results,
        max_text_chars=SNIPPET_MAX_CHARS,
    )
    found = [SearchMatch(path=m.path, line=m.line, snippet=m.text) for m in result.matches]
    matches = leading(found, ctx.command_output_limit)
    truncated = result.truncated or len(matches) < len(found)
    return ToolResult(output=SearchOutput(matches=matches, count=len(matches), truncated=truncated))


# registry ---------------------------------------------------------------------------------------


TOOLS: list[Tool] = [
    list_files,
    read_file,
    write_file,
    mkdir,
    move,
    copy,
    delete,
    stat,
    patch,
    search,
]
