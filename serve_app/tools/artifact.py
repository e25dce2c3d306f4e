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
import json
import re
from pathlib import PurePosixPath
from typing import Annotated, Literal

from pydantic import Field

from serve_app.adapters.artifacts import sanitise_name
from serve_app.domain.capability import Idempotency, PathField, RiskLevel, Scope, SideEffects
from serve_app.domain.errors import invalid_argument
from serve_app.domain.models import LogLine, utcnow
from serve_app.domain.paths import WorkspacePath
from serve_app.tools.base import ArtifactPayload, Tool, ToolContext, ToolResult
from serve_app.tools.declare import Arguments, Output, WorkspacePathArg, bounded, tool
from serve_app.tools.fitting import head_within

KIB, MIB = 1024, 1024 * 1024
BYTES_MIN, BYTES_MAX = KIB, 10 * MIB
UPLOAD_DEFAULT = 2 * MIB
DOWNLOAD_DEFAULT = 256 * KIB
LIST_DEFAULT, LIST_MAX = 200, 2000
NAME_MAX_CHARS = 255
PATTERN_MAX_CHARS = 1024
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9][\w.+-]*/[\w.+-]+(\s*;\s*[\w.+-]+=[\w.+\"-]+)*$")

Encoding = Literal["base64", "utf8"]


class Summary(Output):
    """What every artifact.* output ends with: one line saying what was done."""

    summary: str
    output: str
    exit_code: int


def _summary_log(summary: str) -> list[LogLine]:
    return [LogLine(at=utcnow(), channel="stdout", message=summary)]


async def _read_prefix(ctx: ToolContext, target: WorkspacePath, limit: int) -> tuple[bytes, bool]:
    """Up to `limit` bytes of a regular file, and whether there was more."""
    content = await ctx.runtime.read_file(target, max_bytes=limit)
    return content.data, content.truncated


# artifact.upload ----------------------------------------------------------------------------------


class UploadArgs(Arguments):
    path: WorkspacePathArg
    name: Annotated[
        str | None, Field(max_length=NAME_MAX_CHARS, description="Default: the file name")
    ] = None
    content_type: Annotated[
        str, Field(max_length=NAME_MAX_CHARS, description=f"Default {DEFAULT_CONTENT_TYPE}")
    ] = DEFAULT_CONTENT_TYPE
    max_bytes: Annotated[int, bounded(BYTES_MIN, BYTES_MAX, f"Default {UPLOAD_DEFAULT}")] = (
        UPLOAD_DEFAULT
    )


class UploadOutput(Summary):
    path: str
    artifact_name: str
    content_type: str
    size_bytes: int
    sha256: str
    truncated: bool


def _content_type(raw: str) -> str:
    value = raw.strip()
    if not value:
        return DEFAULT_CONTENT_TYPE
    if not _CONTENT_TYPE.match(value):
        raise invalid_argument(f"content_type is not a media type: {value!r}")
    return value


@tool(
    name="artifact.upload",
    description="Read a workspace file and publish it as invocation artifact payload.",
    scope=Scope.WORKSPACE,
    risk=RiskLevel.LOW,
    approval=False,
    side_effects=SideEffects.REVERSIBLE,
    idempotency=Idempotency.BEST_EFFORT,
    timeout=45,
    output_kb=1024,
    path_fields=[PathField(field="path")],
    preconditions=["path must be inside allowed_paths"],
    postconditions=["artifact payload attached to invocation"],
    examples=[{"path": "dist/app", "name": "app-linux-amd64"}],
)
async def upload(ctx: ToolContext, args: UploadArgs) -> ToolResult[UploadOutput]:
    target = await ctx.path(args.path)
    content_type = _content_type(args.content_type)
    name = sanitise_name((args.name or "").strip() or PurePosixPath(target.requested).name)
    data, truncated = await _read_prefix(ctx, target, args.max_bytes)
    summary = f"uploaded artifact {name} from {target.requested} ({len(data)} bytes)"
    output = UploadOutput(
        path=target.requested,
        artifact_name=name,
        content_type=content_type,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        truncated=truncated,
        summary=summary,
        output=summary,
        exit_code=0,
    )
    return ToolResult(
        output=output,
        logs=_summary_log(summary),
        artifacts=[ArtifactPayload(name=name, content_type=content_type, data=data)],
    )


# artifact.download --------------------------------------------------------------------------------


class DownloadArgs(Arguments):
    path: WorkspacePathArg
    encoding: Annotated[
        Encoding, Field(description="Default base64 (content_base64); utf8 fills content")
    ] = "base64"
    max_bytes: Annotated[int, bounded(BYTES_MIN, BYTES_MAX, f"Default {DOWNLOAD_DEFAULT}")] = (
        DOWNLOAD_DEFAULT
    )


class DownloadOutput(Summary):
    path: str
    encoding: str
    content: str | None = None
    content_base64: str | None = None
    size_bytes: int
    sha256: str
    truncated: bool


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


@tool(
    name="artifact.download",
    description="Read artifact-like content from workspace and return encoded payload.",
    scope=Scope.WORKSPACE,
    risk=RiskLevel.LOW,
    approval=False,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.GUARANTEED,
    timeout=45,
    output_kb=2048,
    path_fields=[PathField(field="path")],
    preconditions=["path must be inside allowed_paths"],
    postconditions=["artifact payload returned in tool output"],
    examples=[{"path": "coverage-report.txt", "encoding": "utf8"}],
)
async def download(ctx: ToolContext, args: DownloadArgs) -> ToolResult[DownloadOutput]:
    target = await ctx.path(args.path)
    # What fits the output limit: text as it is (escapes aside), binary content a quarter less.
    fits = ctx.command_output_limit
    budget = fits if args.encoding == "utf8" else fits // 4 * 3
    data, truncated = await _read_prefix(ctx, target, min(args.max_bytes, budget))
    cut = truncated and len(data) < args.max_bytes
    text: str | None = None
    if args.encoding == "utf8":
        data, decoded = _utf8_prefix(data, truncated, target.requested)
        if 6 * len(data) + 2 > fits:  # escapes could take it over the limit
            fitted: str = await ctx.blocking(lambda: head_within(decoded, fits, note=""))
            if len(fitted) < len(decoded):
                decoded, data, truncated, cut = fitted, fitted.encode("utf-8"), True, True
        text = decoded
    summary = f"downloaded artifact from {target.requested} ({len(data)} bytes)"
    if cut:
        summary += f"; cut to fit the output limit of {ctx.output_limit // KIB} KiB"
    output = DownloadOutput(
        path=target.requested,
        encoding=args.encoding,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        truncated=truncated,
        summary=summary,
        output=summary,
        exit_code=0,
    )
    if text is not None:
        output.content = text
    else:
        output.content_base64 = base64.b64encode(data).decode("ascii")
    return ToolResult(output=output, logs=_summary_log(summary))


# artifact.list ------------------------------------------------------------------------------------


class ListArgs(Arguments):
    path: Annotated[
        WorkspacePathArg, Field(description="Directory (or file) to list (default .)")
    ] = "."
    recursive: Annotated[bool, Field(description="Descend into subdirectories (default true)")] = (
        True
    )
    pattern: Annotated[
        str,
        Field(
            max_length=PATTERN_MAX_CHARS,
            description="Glob matched against the relative path or the file name",
        ),
    ] = ""
    max_entries: Annotated[int, bounded(1, LIST_MAX, f"Default {LIST_DEFAULT}")] = LIST_DEFAULT


class ArtifactEntry(Output):
    path: str
    size_bytes: int


class ListOutput(Summary):
    path: str
    recursive: bool
    pattern: str
    count: int
    truncated: bool
    artifacts: list[ArtifactEntry]


def pattern_matches(relative: str, pattern: str) -> bool:
    """Glob where `*` stays inside one path segment: the whole relative path matches segment by
    segment, or the file name alone matches."""
    if not pattern:
        return True
    parts, globs = relative.split("/"), pattern.split("/")
    if len(parts) == len(globs) and all(map(fnmatch.fnmatchcase, parts, globs)):
        return True
    return fnmatch.fnmatchcase(parts[-1], pattern)


@tool(
    name="artifact.list",
    description="List candidate artifact files in workspace path.",
    scope=Scope.WORKSPACE,
    risk=RiskLevel.LOW,
    approval=False,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.GUARANTEED,
    timeout=45,
    output_kb=1024,
    path_fields=[PathField(field="path")],
    preconditions=["path must be inside allowed_paths"],
    postconditions=["no workspace mutation"],
    examples=[{"path": "dist", "recursive": True, "pattern": "*.tar.gz"}],
)
async def list_artifacts(ctx: ToolContext, args: ListArgs) -> ToolResult[ListOutput]:
    target = await ctx.path(args.path or ".")
    pattern = args.pattern.strip()
    listing = await ctx.runtime.walk_files(
        target,
        recursive=args.recursive,
        max_files=args.max_entries,
        include=(lambda path: pattern_matches(path, pattern)) if pattern else None,
    )
    artifacts: list[ArtifactEntry] = []
    size, truncated = 0, listing.truncated
    for info in listing.entries:
        # Each entry costs its path as a JSON string plus about 48 bytes; stop before the limit.
        size += len(json.dumps(info.path, ensure_ascii=False).encode()) + 48
        if size > ctx.command_output_limit:
            truncated = True
            break
        artifacts.append(ArtifactEntry(path=info.path, size_bytes=info.size_bytes))
    summary = f"listed {len(artifacts)} artifact candidates"
    output = ListOutput(
        path=target.requested,
        recursive=args.recursive,
        pattern=pattern,
        count=len(artifacts),
        truncated=truncated,
        artifacts=artifacts,
        summary=summary,
        output=summary,
        exit_code=0,
    )
    return ToolResult(output=output, logs=_summary_log(summary))


# registry -----------------------------------------------------------------------------------------


TOOLS: list[Tool] = [upload, download, list_artifacts]
