"""The workspace runtime: the only way a tool touches a workspace.

A tool runs commands and works on files through one `WorkspaceRuntime`, whatever the workspace
is: a directory under `WORKSPACE_ROOT` whose processes run in a per-call sandbox (the local
runtime), or a runner pod reached through exec (the Kubernetes runtime). Every path argument is a
`WorkspacePath` the runtime itself resolved through the jail; every error is a `ServiceError`
with the contract's codes (`not_found`, `invalid_argument`, `policy_denied`, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Literal, Protocol

from serve_app.domain.models import LogLine
from serve_app.domain.paths import WorkspacePath

DEFAULT_OUTPUT_LIMIT = 256 * 1024
SKIPPED_DIRS = frozenset({".git"})
FileKind = Literal["file", "dir", "symlink", "other"]


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    output: str
    truncated: bool
    timed_out: bool
    logs: list[LogLine] = field(default_factory=list)


@dataclass(frozen=True)
class FileInfo:
    """One entry, never following a final symlink. `path` is relative to the workspace."""

    path: str
    kind: FileKind
    size_bytes: int
    mode: int
    modified_at: float


@dataclass(frozen=True)
class FileContent:
    """The first bytes of a regular file and its whole size."""

    data: bytes
    size_bytes: int

    @property
    def truncated(self) -> bool:
        return self.size_bytes > len(self.data)


@dataclass(frozen=True)
class Listing:
    entries: list[FileInfo]
    truncated: bool


@dataclass(frozen=True)
class SearchMatch:
    path: str
    line: int
    text: str


@dataclass(frozen=True)
class SearchResult:
    matches: list[SearchMatch]
    truncated: bool


class CommandRunner(Protocol):
    async def __call__(
        self,
        argv: Sequence[str],
        *,
        cwd: PurePosixPath | str | None = None,
        timeout: float,
        stdin: bytes | None = None,
        output_limit: int = DEFAULT_OUTPUT_LIMIT,
        env: Mapping[str, str] | None = None,
        network: bool | None = None,
    ) -> CommandResult:
        """Run `argv` (never through a shell) in the workspace (or `cwd`, which must lie inside
        it), with the session's scrubbed environment plus `env`. `network=None` takes the
        calling capability's declaration. Exit code 124 marks a timeout, -1 a command that could
        not be started (its output then starts with "cannot start ")."""


class WorkspaceRuntime(Protocol):
    """Commands and file operations on one session's workspace."""

    @property
    def kind(self) -> str: ...

    @property
    def workspace(self) -> PurePosixPath:
        """The workspace directory as commands and resolved paths name it."""

    @property
    def visible_devices(self) -> str | None:
        """The GPUs this runtime's processes may use (`CUDA_VISIBLE_DEVICES`), None when unset."""

    @property
    def run(self) -> CommandRunner:
        """Runs a command in the workspace (see `CommandRunner`)."""

    async def which(self, command: str) -> str | None:
        """Where `command` is found on the PATH commands run with, or None."""

    async def resolve(self, user_path: str, *, follow_final: bool = True) -> WorkspacePath:
        """Resolve a caller's path through the jail (workspace and allowed_paths)."""

    async def stat(self, path: WorkspacePath) -> FileInfo | None:
        """The entry itself (a final symlink is not followed); None when it does not exist."""

    async def read_file(self, path: WorkspacePath, *, max_bytes: int) -> FileContent:
        """Up to `max_bytes` of a regular file (never through a final symlink)."""

    async def write_file(
        self,
        path: WorkspacePath,
        data: bytes,
        *,
        create_parents: bool = True,
        mode: int | None = None,
    ) -> None:
        """Replace or create a regular file atomically; an existing file keeps its mode unless
        `mode` is given (new files default to 0644)."""

    async def list_dir(
        self,
        path: WorkspacePath,
        *,
        recursive: bool = False,
        max_entries: int,
        skip_dirs: frozenset[str] = SKIPPED_DIRS,
        max_depth: int | None = None,
    ) -> Listing:
        """Entries of a directory, sorted by name, breadth first when recursive, down to
        `max_depth` levels (1: the directory's own entries)."""

    async def walk_files(
        self,
        path: WorkspacePath,
        *,
        recursive: bool = True,
        max_files: int,
        skip_dirs: frozenset[str] = SKIPPED_DIRS,
        include: Callable[[str], bool] | None = None,
    ) -> Listing:
        """Regular files at or under `path` (the file itself when it is one), depth first in
        name order, symlinks never followed; with `include`, only those whose workspace-relative
        path it accepts (and only they count against `max_files`)."""

    async def mkdir(
        self, path: WorkspacePath, *, parents: bool = True, mode: int = 0o755, exist_ok: bool = True
    ) -> bool:
        """Create a directory; True when it was created."""

    async def move(
        self,
        source: WorkspacePath,
        destination: WorkspacePath,
        *,
        overwrite: bool = False,
        create_parents: bool = True,
    ) -> None: ...

    async def copy(
        self,
        source: WorkspacePath,
        destination: WorkspacePath,
        *,
        recursive: bool = False,
        overwrite: bool = False,
        create_parents: bool = True,
    ) -> FileKind:
        """Copy a regular file or (with `recursive`) a directory tree; nothing half-copied is
        left behind on failure. Returns the kind copied."""

    async def delete(
        self, path: WorkspacePath, *, recursive: bool = False, missing_ok: bool = False
    ) -> bool:
        """Delete a file, symlink or (with `recursive`) directory; True when it existed."""

    async def search(
        self,
        path: WorkspacePath,
        matches: Callable[[str], bool],
        *,
        max_results: int,
        max_text_chars: int,
        skip_dirs: frozenset[str] = SKIPPED_DIRS,
    ) -> SearchResult:
        """Lines of the text files at or under `path` for which `matches` is true, each cut to
        its first `max_text_chars` characters (a matching line may be megabytes long)."""

    def temp_dir(self, prefix: str) -> AbstractAsyncContextManager[PurePosixPath]:
        """A scratch directory in the session's TMP that commands can use; removed on exit."""
