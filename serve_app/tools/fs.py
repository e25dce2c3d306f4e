"""fs.* — file tools on the local workspace (contract §4.2, §4.3, §13).

Every path goes through the jail (`ToolContext.path`); files are opened with O_NOFOLLOW on the
resolved real path, so a symlink swapped in after the check is not followed either.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import os
import re
import secrets
import shutil
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import re2

from serve_app.domain.capability import Idempotency, PathField, RiskLevel, Scope, SideEffects
from serve_app.domain.errors import ErrorCode, invalid_argument, not_found, policy_denied
from serve_app.domain.paths import WorkspacePath, clean
from serve_app.execution.process import CommandResult
from serve_app.tools.base import Tool, ToolContext, ToolFailed, ToolResult, blocking, define

READ_DEFAULT_BYTES = 64 * 1024
READ_MAX_BYTES = 1024 * 1024
WRITE_MAX_BYTES = 1024 * 1024
LIST_DEFAULT, LIST_MAX = 200, 1000
SEARCH_DEFAULT, SEARCH_MAX = 200, 2000
SEARCH_MAX_LINE_BYTES = 2 * 1024 * 1024
SEARCH_MAX_FILE_BYTES = 64 * 1024 * 1024
SEARCH_PATTERN_MAX = 1024
SNIPPET_MAX_CHARS = 512
COPY_MAX_FILES = 100_000
COPY_MAX_BYTES = 1024 * 1024 * 1024
PATCH_MAX_BYTES = 1024 * 1024
SKIPPED_DIRS = frozenset({".git"})
_MODE = re.compile(r"^0?[0-7]{3}$")

_STRING = {"type": "string"}
_BOOL = {"type": "boolean"}
_PATH = {"type": "string", "maxLength": 4096}


def _int(minimum: int, maximum: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": minimum, "maximum": maximum}


def _open_flags(base: int) -> int:
    return base | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    return "other"


def _mode_text(mode: int) -> str:
    return f"{stat.S_IMODE(mode):04o}"


def _timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _display(ctx: ToolContext, real: Path) -> str:
    root = Path(os.path.realpath(ctx.workspace))
    return real.relative_to(root).as_posix() or "."


def _entry(ctx: ToolContext, path: Path, info: os.stat_result) -> dict[str, Any]:
    return {
        "path": _display(ctx, path),
        "type": _kind(info.st_mode),
        "size_bytes": info.st_size,
        "mode": _mode_text(info.st_mode),
        "modified_at": _timestamp(info.st_mtime),
    }


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return path.lstat()
    except FileNotFoundError:
        return None


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


def _list(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    target = ctx.path(args.get("path") or ".")
    limit = args.get("max_entries", LIST_DEFAULT)
    info = _lstat(target.real)
    if info is None:
        raise not_found(f"path not found: {target.requested}")
    if not stat.S_ISDIR(info.st_mode):
        raise invalid_argument(f"path is not a directory: {target.requested}")
    entries: list[dict[str, Any]] = []
    truncated = False
    pending = [target.real]
    while pending and not truncated:
        directory = pending.pop(0)
        ctx.check_deadline()
        with os.scandir(directory) as scan:
            children = sorted(scan, key=lambda child: child.name)
        for child in children:
            if len(entries) >= limit:
                truncated = True
                break
            child_info = child.stat(follow_symlinks=False)
            entries.append(_entry(ctx, Path(child.path), child_info))
            if (
                args.get("recursive")
                and stat.S_ISDIR(child_info.st_mode)
                and (child.name not in SKIPPED_DIRS)
            ):
                pending.append(Path(child.path))
    return ToolResult(output={"entries": entries, "count": len(entries), "truncated": truncated})


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


def _open_regular(path: WorkspacePath) -> tuple[int, os.stat_result]:
    try:
        fd = os.open(path.real, _open_flags(os.O_RDONLY | os.O_NONBLOCK))
    except FileNotFoundError:
        raise not_found(f"file not found: {path.requested}") from None
    except IsADirectoryError:
        raise invalid_argument(f"path is a directory: {path.requested}") from None
    except OSError as exc:
        raise policy_denied(f"cannot open {path.requested}: {exc.strerror}") from None
    info = os.fstat(fd)
    if stat.S_ISDIR(info.st_mode):
        os.close(fd)
        raise invalid_argument(f"path is a directory: {path.requested}")
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise invalid_argument(f"not a regular file: {path.requested}")
    return fd, info


def _read_file(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    target = ctx.path(args["path"])
    limit = args.get("max_bytes", READ_DEFAULT_BYTES)
    fd, info = _open_regular(target)
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(limit)
    truncated = info.st_size > len(data)
    try:
        decoder = codecs.getincrementaldecoder("utf-8")()
        text = decoder.decode(data, final=not truncated)
        encoding, content = "utf8", text
    except UnicodeDecodeError:
        encoding, content = "base64", base64.b64encode(data).decode("ascii")
    return ToolResult(
        output={
            "path": target.requested,
            "encoding": encoding,
            "content": content,
            "size_bytes": info.st_size,
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


def _ensure_parent(ctx: ToolContext, target: WorkspacePath, create: bool) -> None:
    parent = target.real.parent
    if parent.is_dir():
        return
    if not create:
        raise not_found(f"parent directory does not exist: {target.requested}")
    if parent.exists():
        raise invalid_argument(f"parent is not a directory: {target.requested}")
    parent.mkdir(parents=True, exist_ok=True)
    # The chain was checked lexically; check once more now that it exists.
    ctx.path(_display(ctx, parent))


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, _open_flags(os.O_WRONLY | os.O_CREAT | os.O_EXCL), mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _write_file(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    data = _decode_content(args)
    target = ctx.path(args["path"])
    if target.is_root:
        raise invalid_argument("path is the workspace root")
    existing = _lstat(target.real)
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        raise invalid_argument(f"path exists and is not a regular file: {target.requested}")
    _ensure_parent(ctx, target, args.get("create_parents", True))
    mode = stat.S_IMODE(existing.st_mode) if existing is not None else 0o644
    _write_atomically(target.real, data, mode)
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


def _mkdir(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    target = ctx.path(args["path"])
    mode_text = args.get("mode", "0755")
    if not _MODE.fullmatch(mode_text):
        raise invalid_argument("mode must be an octal permission such as 0755")
    mode = int(mode_text, 8)
    existing = _lstat(target.real)
    if existing is not None:
        if not stat.S_ISDIR(existing.st_mode):
            raise invalid_argument(f"path exists and is not a directory: {target.requested}")
        if not args.get("exist_ok", True):
            raise invalid_argument(f"directory already exists: {target.requested}")
        created = False
    else:
        if args.get("create_parents", True):
            target.real.parent.mkdir(parents=True, exist_ok=True)
            ctx.path(_display(ctx, target.real.parent))
        elif not target.real.parent.is_dir():
            raise not_found(f"parent directory does not exist: {target.requested}")
        target.real.mkdir()
        os.chmod(target.real, mode)
        created = True
    actual = _mode_text(target.real.lstat().st_mode)
    return ToolResult(output={"path": target.requested, "created": created, "mode": actual})


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


def _is_within(path: Path, ancestor: Path) -> bool:
    return path == ancestor or ancestor in path.parents


def _prepare_destination(
    ctx: ToolContext, source: WorkspacePath, destination: WorkspacePath, args: dict[str, Any]
) -> None:
    if destination.is_root:
        raise invalid_argument("destination is the workspace root")
    if _is_within(destination.real, source.real):
        raise invalid_argument("destination is inside the source")
    if _is_within(source.real, destination.real):
        # Replacing an ancestor of the source would delete the source before it is moved/copied.
        raise invalid_argument("source is inside the destination")
    existing = _lstat(destination.real)
    if existing is not None:
        if not args.get("overwrite", False):
            raise invalid_argument(f"destination exists: {destination.requested}")
        if stat.S_ISDIR(existing.st_mode):
            shutil.rmtree(destination.real)
        else:
            destination.real.unlink()
    _ensure_parent(ctx, destination, args.get("create_parents", True))


def _move(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    source = ctx.path(args["source_path"], follow_final=False)
    destination = ctx.path(args["destination_path"], follow_final=False)
    if source.is_root:
        raise policy_denied("cannot move the workspace root")
    if _lstat(source.real) is None:
        raise not_found(f"source not found: {source.requested}")
    _prepare_destination(ctx, source, destination, args)
    os.rename(source.real, destination.real)
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


def _copy_file(source: Path, destination: Path) -> int:
    src_fd = os.open(source, _open_flags(os.O_RDONLY | os.O_NONBLOCK))
    try:
        info = os.fstat(src_fd)
        flags = _open_flags(os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        dst_fd = os.open(destination, flags, stat.S_IMODE(info.st_mode))
        with os.fdopen(dst_fd, "wb") as out, os.fdopen(os.dup(src_fd), "rb") as src:
            shutil.copyfileobj(src, out, 1024 * 1024)
        return info.st_size
    finally:
        os.close(src_fd)


def _walk(root: Path) -> Iterator[tuple[Path, list[os.DirEntry[str]]]]:
    pending = [root]
    while pending:
        directory = pending.pop()
        with os.scandir(directory) as scan:
            children = sorted(scan, key=lambda child: child.name)
        yield directory, children
        pending.extend(
            Path(child.path) for child in reversed(children) if child.is_dir(follow_symlinks=False)
        )


def _copy_tree(ctx: ToolContext, source: Path, destination: Path) -> None:
    files = copied_bytes = 0
    for directory, children in _walk(source):
        ctx.check_deadline()
        target_dir = destination / directory.relative_to(source)
        target_dir.mkdir(exist_ok=True)
        shutil.copymode(directory, target_dir)
        for child in children:
            if not child.is_file(follow_symlinks=False):
                continue
            files += 1
            copied_bytes += child.stat(follow_symlinks=False).st_size
            if files > COPY_MAX_FILES or copied_bytes > COPY_MAX_BYTES:
                raise invalid_argument(
                    f"copy exceeds {COPY_MAX_FILES} files or {COPY_MAX_BYTES} bytes"
                )
            _copy_file(Path(child.path), target_dir / child.name)


def _copy(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    source = ctx.path(args["source_path"], follow_final=False)
    destination = ctx.path(args["destination_path"], follow_final=False)
    info = _lstat(source.real)
    if info is None:
        raise not_found(f"source not found: {source.requested}")
    if stat.S_ISLNK(info.st_mode):
        raise invalid_argument(f"fs.copy does not copy symlinks: {source.requested}")
    is_dir = stat.S_ISDIR(info.st_mode)
    if is_dir and not args.get("recursive", False):
        raise invalid_argument(f"source is a directory; set recursive=true: {source.requested}")
    if not is_dir and not stat.S_ISREG(info.st_mode):
        raise invalid_argument(f"not a regular file: {source.requested}")
    _prepare_destination(ctx, source, destination, args)
    try:
        if is_dir:
            _copy_tree(ctx, source.real, destination.real)
        else:
            _copy_file(source.real, destination.real)
    except BaseException:
        # No half-copied destination is left behind.
        if destination.real.is_dir() and not destination.real.is_symlink():
            shutil.rmtree(destination.real, ignore_errors=True)
        else:
            destination.real.unlink(missing_ok=True)
        raise
    return ToolResult(
        output={
            "source_path": source.requested,
            "destination_path": destination.requested,
            "copied": True,
            "type": "dir" if is_dir else "file",
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


def _delete(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    target = ctx.path(args["path"], follow_final=False)
    if target.is_root:
        raise policy_denied("cannot delete the workspace root")
    info = _lstat(target.real)
    if info is None:
        if args.get("force", False):
            return ToolResult(output={"path": target.requested, "deleted": False, "existed": False})
        raise not_found(f"path not found: {target.requested}")
    if stat.S_ISDIR(info.st_mode):
        if not args.get("recursive", False):
            raise invalid_argument(f"path is a directory; set recursive=true: {target.requested}")
        shutil.rmtree(target.real)
    else:
        target.real.unlink()
    return ToolResult(output={"path": target.requested, "deleted": True, "existed": True})


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


def _stat(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    target = ctx.path(args["path"], follow_final=False)
    info = _lstat(target.real)
    if info is None:
        return ToolResult(output={"path": target.requested, "exists": False})
    return ToolResult(
        output=_entry(ctx, target.real, info) | {"path": target.requested, "exists": True}
    )


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
    result = await ctx.run(
        ["git", "apply", "--numstat", "-z", "-"],
        cwd=ctx.workspace,
        timeout=ctx.remaining(),
        stdin=diff.encode("utf-8"),
        output_limit=4 * PATCH_MAX_BYTES,
    )
    if result.timed_out or result.exit_code != 0 or result.truncated:
        raise _apply_failed(result, strategy)
    records = (record.split("\t", 2) for record in result.output.split("\0"))
    return [fields[2] for fields in records if len(fields) == 3 and fields[2]]


async def _patch(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    diff: str = args["unified_diff"]
    strategy = args.get("strategy", "reject_on_conflict")
    paths = patch_paths(diff)
    if not paths:
        raise invalid_argument("unified_diff has no file headers (--- / +++ lines)")
    for path in paths:
        ctx.path(path, follow_final=False)
    for path in await _git_targets(ctx, diff, strategy):
        ctx.path(path, follow_final=False)
    argv = ["git", "apply", "--whitespace=nowarn"]
    if strategy == "apply" and (ctx.workspace / ".git").exists():
        argv.append("--3way")
    argv.append("-")
    result = await ctx.run(
        argv, cwd=ctx.workspace, timeout=ctx.remaining(), stdin=diff.encode("utf-8")
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


def _walk_skipping(root: Path) -> Iterator[Path]:
    pending = [root]
    while pending:
        directory = pending.pop()
        with os.scandir(directory) as scan:
            children = sorted(scan, key=lambda child: child.name)
        for child in children:
            if child.is_file(follow_symlinks=False):
                yield Path(child.path)
        pending.extend(
            Path(child.path)
            for child in reversed(children)
            if child.is_dir(follow_symlinks=False) and child.name not in SKIPPED_DIRS
        )


def _search(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    try:
        regex = re2.compile(args["pattern"])
    except re2.error as exc:
        raise invalid_argument(f"invalid pattern: {exc}") from None
    target = ctx.path(args.get("path") or ".")
    info = _lstat(target.real)
    if info is None:
        raise not_found(f"path not found: {target.requested}")
    limit = args.get("max_results", SEARCH_DEFAULT)
    files = [target.real] if stat.S_ISREG(info.st_mode) else _walk_skipping(target.real)
    matches: list[dict[str, Any]] = []
    truncated = False
    for path in files:
        ctx.check_deadline()
        if truncated:
            break
        for number, line in _lines(path):
            if regex.search(line):
                if len(matches) >= limit:
                    truncated = True
                    break
                matches.append(
                    {
                        "path": _display(ctx, path),
                        "line": number,
                        "snippet": line[:SNIPPET_MAX_CHARS],
                    }
                )
    return ToolResult(output={"matches": matches, "count": len(matches), "truncated": truncated})


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Text lines of a file; binary files (a NUL in the first 8 KiB) and huge files yield none."""
    try:
        fd = os.open(path, _open_flags(os.O_RDONLY | os.O_NONBLOCK))
    except OSError:
        return
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > SEARCH_MAX_FILE_BYTES:
            return
        if b"\x00" in handle.read(8192):
            return
        handle.seek(0)
        number = 0
        while raw := handle.readline(SEARCH_MAX_LINE_BYTES + 1):
            number += 1
            if len(raw) > SEARCH_MAX_LINE_BYTES:
                while raw and not raw.endswith(b"\n"):
                    raw = handle.readline(SEARCH_MAX_LINE_BYTES + 1)
                continue
            yield number, raw.decode("utf-8", "replace").rstrip("\r\n")


# registry ---------------------------------------------------------------------------------------


TOOLS: list[Tool] = [
    Tool(LIST, blocking(_list)),
    Tool(READ_FILE, blocking(_read_file)),
    Tool(WRITE_FILE, blocking(_write_file)),
    Tool(MKDIR, blocking(_mkdir)),
    Tool(MOVE, blocking(_move)),
    Tool(COPY, blocking(_copy)),
    Tool(DELETE, blocking(_delete)),
    Tool(STAT, blocking(_stat)),
    Tool(PATCH, _patch),
    Tool(SEARCH, blocking(_search)),
]
