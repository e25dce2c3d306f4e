"""artifact.* — publish, read and list workspace files as artifacts (contract §4.2, §4.3).

`artifact.upload` returns the file as a tool artifact; the session manager stores it in the same
durable artifact storage as the invocation's output. Files are read through the session's
`WorkspaceRuntime` without following a final symlink, and listing never follows symlinks (only
regular files are candidates, and `.git` is not entered).
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import re
from pathlib import PurePosixPath
from typing import Any

from serve_app.adapters.artifacts import sanitise_name
from serve_app.domain.capability import Idempotency, PathField, RiskLevel, Scope, SideEffects
from serve_app.domain.errors import invalid_argument
from serve_app.domain.models import LogLine, utcnow
from serve_app.domain.paths import WorkspacePath
from serve_app.tools.base import ArtifactPayload, Tool, ToolContext, ToolResult, define

KIB, MIB = 1024, 1024 * 1024
BYTES_MIN, BYTES_MAX = KIB, 10 * MIB
UPLOAD_DEFAULT = 2 * MIB
DOWNLOAD_DEFAULT = 256 * KIB
LIST_DEFAULT, LIST_MAX = 200, 2000
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9][\w.+-]*/[\w.+-]+(\s*;\s*[\w.+-]+=[\w.+\"-]+)*$")

_STRING = {"type": "string"}
_BOOL = {"type": "boolean"}
_INT = {"type": "integer"}
_PATH = {"type": "string", "maxLength": 4096}
_SUMMARY = {"summary": _STRING, "output": _STRING, "exit_code": _INT}


def _max_bytes(default: int) -> dict[str, Any]:
    return {
        "type": "integer",
        "minimum": BYTES_MIN,
        "maximum": BYTES_MAX,
        "description": f"Default {default}",
    }


def _summary_log(summary: str) -> list[LogLine]:
    return [LogLine(at=utcnow(), channel="stdout", message=summary)]


async def _read_prefix(ctx: ToolContext, target: WorkspacePath, limit: int) -> tuple[bytes, bool]:
    """Up to `limit` bytes of a regular file, and whether there was more."""
    content = await ctx.runtime.read_file(target, max_bytes=limit)
    return content.data, content.truncated


# artifact.upload ----------------------------------------------------------------------------------

UPLOAD = define(
    name="artifact.upload",
    description="Read a workspace file and publish it as invocation artifact payload.",
    scope=Scope.WORKSPACE,
    risk=RiskLevel.LOW,
    approval=False,
    side_effects=SideEffects.REVERSIBLE,
    idempotency=Idempotency.BEST_EFFORT,
    timeout=45,
    output_kb=1024,
    properties={
        "path": _PATH,
        "name": {"type": "string", "maxLength": 255, "description": "Default: the file name"},
        "content_type": {
            "type": "string",
            "maxLength": 255,
            "description": f"Default {DEFAULT_CONTENT_TYPE}",
        },
        "max_bytes": _max_bytes(UPLOAD_DEFAULT),
    },
    required=["path"],
    outputs={
        "path": _STRING,
        "artifact_name": _STRING,
        "content_type": _STRING,
        "size_bytes": _INT,
        "sha256": _STRING,
        "truncated": _BOOL,
        **_SUMMARY,
    },
    path_fields=[PathField(field="path")],
    preconditions=["path must be inside allowed_paths"],
    postconditions=["artifact payload attached to invocation"],
    examples=[{"path": "dist/app", "name": "app-linux-amd64"}],
)


def _content_type(raw: str | None) -> str:
    value = (raw or "").strip()
    if not value:
        return DEFAULT_CONTENT_TYPE
    if not _CONTENT_TYPE.match(value):
        raise invalid_argument(f"content_type is not a media type: {value!r}")
    return value


async def _upload(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    target = await ctx.path(args["path"])
    content_type = _content_type(args.get("content_type"))
    name = sanitise_name((args.get("name") or "").strip() or PurePosixPath(target.requested).name)
    data, truncated = await _read_prefix(ctx, target, args.get("max_bytes", UPLOAD_DEFAULT))
    summary = f"uploaded artifact {name} from {target.requested} ({len(data)} bytes)"
    output = {
        "path": target.requested,
        "artifact_name": name,
        "content_type": content_type,
        "size_bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "truncated": truncated,
        "summary": summary,
        "output": summary,
        "exit_code": 0,
    }
    return ToolResult(
        output=output,
        logs=_summary_log(summary),
        artifacts=[ArtifactPayload(name=name, content_type=content_type, data=data)],
    )


# artifact.download --------------------------------------------------------------------------------

DOWNLOAD = define(
    name="artifact.download",
    description="Read artifact-like content from workspace and return encoded payload.",
    scope=Scope.WORKSPACE,
    risk=RiskLevel.LOW,
    approval=False,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.GUARANTEED,
    timeout=45,
    output_kb=2048,
    properties={
        "path": _PATH,
        "encoding": {
            "type": "string",
            "enum": ["base64", "utf8"],
            "description": "Default base64 (content_base64); utf8 fills content",
        },
        "max_bytes": _max_bytes(DOWNLOAD_DEFAULT),
    },
    required=["path"],
    outputs={
        "path": _STRING,
        "encoding": _STRING,
        "content": _STRING,
        "content_base64": _STRING,
        "size_bytes": _INT,
        "sha256": _STRING,
        "truncated": _BOOL,
        **_SUMMARY,
    },
    path_fields=[PathField(field="path")],
    preconditions=["path must be inside allowed_paths"],
    postconditions=["artifact payload returned in tool output"],
    examples=[{"path": "coverage-report.txt", "encoding": "utf8"}],
)


def _utf8_prefix(data: bytes, truncated: bool, requested: str) -> tuple[bytes, str]:
    """Decode `data`; a character cut in half by truncation is dropped, not an error."""
    try:
        return data, data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if truncated and exc.reason == "unexpected end of data" and exc.end == len(data):
            kept = data[: exc.start]
            return kept, kept.decode("utf-8")
        raise invalid_argument(
            f"{requested} is not valid UTF-8 (at byte {exc.start}); use encoding=base64"
        ) from None


async def _download(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    target = await ctx.path(args["path"])
    encoding = args.get("encoding", "base64")
    data, truncated = await _read_prefix(ctx, target, args.get("max_bytes", DOWNLOAD_DEFAULT))
    output: dict[str, Any] = {"path": target.requested, "encoding": encoding}
    if encoding == "utf8":
        data, output["content"] = _utf8_prefix(data, truncated, target.requested)
    else:
        output["content_base64"] = base64.b64encode(data).decode("ascii")
    summary = f"downloaded artifact from {target.requested} ({len(data)} bytes)"
    output |= {
        "size_bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "truncated": truncated,
        "summary": summary,
        "output": summary,
        "exit_code": 0,
    }
    return ToolResult(output=output, logs=_summary_log(summary))


# artifact.list ------------------------------------------------------------------------------------

LIST = define(
    name="artifact.list",
    description="List candidate artifact files in workspace path.",
    scope=Scope.WORKSPACE,
    risk=RiskLevel.LOW,
    approval=False,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.GUARANTEED,
    timeout=45,
    output_kb=1024,
    properties={
        "path": _PATH | {"description": "Directory (or file) to list (default .)"},
        "recursive": _BOOL | {"description": "Descend into subdirectories (default true)"},
        "pattern": {
            "type": "string",
            "maxLength": 1024,
            "description": "Glob matched against the relative path or the file name",
        },
        "max_entries": {"type": "integer", "minimum": 1, "maximum": LIST_MAX}
        | {"description": f"Default {LIST_DEFAULT}"},
    },
    outputs={
        "path": _STRING,
        "recursive": _BOOL,
        "pattern": _STRING,
        "count": _INT,
        "truncated": _BOOL,
        "artifacts": {"type": "array", "items": {"type": "object"}},
        **_SUMMARY,
    },
    path_fields=[PathField(field="path")],
    preconditions=["path must be inside allowed_paths"],
    postconditions=["no workspace mutation"],
    examples=[{"path": "dist", "recursive": True, "pattern": "*.tar.gz"}],
)


def pattern_matches(relative: str, pattern: str) -> bool:
    """Glob where `*` stays inside one path segment: the whole relative path matches segment by
    segment, or the file name alone matches."""
    if not pattern:
        return True
    parts, globs = relative.split("/"), pattern.split("/")
    if len(parts) == len(globs) and all(map(fnmatch.fnmatchcase, parts, globs)):
        return True
    return fnmatch.fnmatchcase(parts[-1], pattern)


async def _list(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    target = await ctx.path(args.get("path") or ".")
    recursive = args.get("recursive", True)
    pattern = (args.get("pattern") or "").strip()
    limit = args.get("max_entries", LIST_DEFAULT)
    listing = await ctx.runtime.walk_files(
        target,
        recursive=recursive,
        max_files=limit,
        include=(lambda path: pattern_matches(path, pattern)) if pattern else None,
    )
    artifacts = [{"path": info.path, "size_bytes": info.size_bytes} for info in listing.entries]
    truncated = listing.truncated
    summary = f"listed {len(artifacts)} artifact candidates"
    output = {
        "path": target.requested,
        "recursive": recursive,
        "pattern": pattern,
        "count": len(artifacts),
        "truncated": truncated,
        "artifacts": artifacts,
        "summary": summary,
        "output": summary,
        "exit_code": 0,
    }
    return ToolResult(output=output, logs=_summary_log(summary))


# registry -----------------------------------------------------------------------------------------


TOOLS: list[Tool] = [
    Tool(UPLOAD, _upload),
    Tool(DOWNLOAD, _download),
    Tool(LIST, _list),
]
