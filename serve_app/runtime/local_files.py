"""File operations on a local workspace directory, through the path jail.

The synchronous half of the local runtime: `LocalRuntime` runs these on a thread pool. Every
path is a `WorkspacePath` resolved by `resolve`, then opened from a handle on the workspace one
component at a time (`Anchor`), so neither a symlink swapped in after the check nor a concurrent
rename makes an operation act outside the workspace; walks never follow symlinks.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from serve_app.domain.errors import invalid_argument, not_found, policy_denied
from serve_app.domain.paths import WorkspacePath, resolve
from serve_app.runtime.anchored import (
    HERE,
    Anchor,
    Missing,
    NotDirectory,
    file_flags,
    join,
    lstat_at,
    open_child_directory,
    within,
)
from serve_app.runtime.interface import (
    SKIPPED_DIRS,
    FileContent,
    FileInfo,
    FileKind,
    Listing,
    SearchMatch,
    SearchResult,
)

COPY_MAX_FILES = 100_000
COPY_MAX_BYTES = 1024 * 1024 * 1024
SEARCH_MAX_LINE_BYTES = 2 * 1024 * 1024
SEARCH_MAX_FILE_BYTES = 64 * 1024 * 1024
BINARY_SNIFF_BYTES = 8192
COPY_CHUNK_BYTES = 1024 * 1024
NEW_FILE_MODE = 0o644
_READ_FLAGS = file_flags(os.O_RDONLY | os.O_NONBLOCK)
_CREATE_FLAGS = file_flags(os.O_WRONLY | os.O_CREAT | os.O_EXCL)

Entry = tuple[int, str, os.stat_result]
"""An existing entry: (descriptor of its directory, its name there, its lstat)."""


def _kind(mode: int) -> FileKind:
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    return "other"


def _is_within(path: str, ancestor: str) -> bool:
    inner, outer = PurePosixPath(path), PurePosixPath(ancestor)
    return inner == outer or outer in inner.parents


def _children(directory: int) -> list[tuple[str, os.stat_result]]:
    """The entries of an open directory, by name, with their lstat (entries that vanish while
    listed are left out)."""
    found: list[tuple[str, os.stat_result]] = []
    with os.scandir(directory) as scan:
        for child in scan:
            try:
                found.append((child.name, child.stat(follow_symlinks=False)))
            except FileNotFoundError:
                continue
    return sorted(found, key=lambda item: item[0])


def _remove(directory: int, name: str, info: os.stat_result | None) -> None:
    if info is not None and stat.S_ISDIR(info.st_mode):
        shutil.rmtree(name, dir_fd=directory)
    else:
        os.unlink(name, dir_fd=directory)


class LocalFiles:
    """The file operations of `WorkspaceRuntime` on a directory of this machine, synchronously."""

    def __init__(
        self,
        workspace: Path,
        allowed_paths: list[str],
        *,
        deadline: Callable[[], None] | None = None,
    ) -> None:
        self._workspace = workspace
        self._allowed_paths = list(allowed_paths)
        self._anchor = Anchor(Path(os.path.realpath(workspace)))
        self._deadline = deadline

    # helpers ------------------------------------------------------------------------------------

    def _check_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline()

    @staticmethod
    def _info(relative: str, info: os.stat_result) -> FileInfo:
        return FileInfo(
            path=relative,
            kind=_kind(info.st_mode),
            size_bytes=info.st_size,
            mode=stat.S_IMODE(info.st_mode),
            modified_at=info.st_mtime,
        )

    @contextlib.contextmanager
    def _entry(self, path: WorkspacePath) -> Iterator[Entry | None]:
        """The entry at `path`, or None when it does not exist."""
        with contextlib.ExitStack() as stack:
            try:
                directory, name = stack.enter_context(
                    self._anchor.parent(path.relative, requested=path.requested)
                )
            except Missing:
                directory, name = -1, ""
            info = lstat_at(directory, name) if name else None
            yield None if info is None else (directory, name, info)

    @contextlib.contextmanager
    def _existing(self, path: WorkspacePath, what: str) -> Iterator[Entry]:
        with self._entry(path) as entry:
            if entry is None:
                raise not_found(f"{what} not found: {path.requested}")
            yield entry

    @contextlib.contextmanager
    def _new_entry(self, path: WorkspacePath, create_parents: bool) -> Iterator[tuple[int, str]]:
        """The parent directory of `path` (created when `create_parents`) and the final name."""
        with contextlib.ExitStack() as stack:
            try:
                at = stack.enter_context(
                    self._anchor.parent(
                        path.relative, requested=path.requested, create=create_parents
                    )
                )
            except NotDirectory:
                raise invalid_argument(f"parent is not a directory: {path.requested}") from None
            except Missing:
                raise not_found(f"parent directory does not exist: {path.requested}") from None
            yield at

    @contextlib.contextmanager
    def _destination(
        self,
        source: WorkspacePath,
        destination: WorkspacePath,
        overwrite: bool,
        create_parents: bool,
    ) -> Iterator[tuple[int, str]]:
        if destination.is_root:
            raise invalid_argument("destination is the workspace root")
        if _is_within(destination.relative, source.relative):
            raise invalid_argument("destination is inside the source")
        if _is_within(source.relative, destination.relative):
            # Replacing an ancestor of the source would delete the source before it is moved.
            raise invalid_argument("source is inside the destination")
        with self._new_entry(destination, create_parents) as (directory, name):
            existing = lstat_at(directory, name)
            if existing is not None:
                if not overwrite:
                    raise invalid_argument(f"destination exists: {destination.requested}")
                _remove(directory, name, existing)
            yield directory, name

    @staticmethod
    def _open_regular(directory: int, name: str, requested: str) -> tuple[int, os.stat_result]:
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=directory)
        except FileNotFoundError:
            raise not_found(f"file not found: {requested}") from None
        except IsADirectoryError:
            raise invalid_argument(f"path is a directory: {requested}") from None
        except OSError as exc:
            raise policy_denied(f"cannot open {requested}: {exc.strerror}") from None
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            os.close(fd)
            raise invalid_argument(f"path is a directory: {requested}")
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise invalid_argument(f"not a regular file: {requested}")
        return fd, info

    @staticmethod
    def _write_atomically(directory: int, name: str, data: bytes, mode: int) -> None:
        temporary = f".{name[:200]}.{secrets.token_hex(4)}.tmp"
        fd = os.open(temporary, _CREATE_FLAGS, mode, dir_fd=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                os.fchmod(handle.fileno(), mode)
            os.replace(temporary, name, src_dir_fd=directory, dst_dir_fd=directory)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary, dir_fd=directory)
            raise

    def _copy_file(self, source: int, directory: int, name: str) -> int:
        """Copy the open regular file `source` to a new file `name` in `directory`."""
        info = os.fstat(source)
        target = os.open(name, _CREATE_FLAGS, stat.S_IMODE(info.st_mode), dir_fd=directory)
        with os.fdopen(target, "wb") as out, os.fdopen(os.dup(source), "rb") as src:
            # Chunk by chunk, so that a copy past its deadline stops (and frees its thread).
            while chunk := src.read(COPY_CHUNK_BYTES):
                self._check_deadline()
                out.write(chunk)
        return info.st_size

    def _copy_tree(self, source: WorkspacePath, destination: WorkspacePath) -> None:
        """Copy the directory `source` to `destination`, whose parent exists and which does not;
        regular files and directories only, each opened from its parent's descriptor."""
        files = copied_bytes = 0
        pending = [HERE]
        while pending:
            self._check_deadline()
            below = pending.pop()
            subdirectories: list[str] = []
            with (
                self._anchor.directory(
                    within(source.relative, below), requested=source.requested
                ) as from_dir,
                self._anchor.directory(
                    within(destination.relative, below), requested=destination.requested
                ) as to_dir,
            ):
                for name, info in _children(from_dir):
                    if stat.S_ISDIR(info.st_mode):
                        os.mkdir(name, dir_fd=to_dir)
                        made = open_child_directory(to_dir, name, destination.requested)
                        try:
                            os.fchmod(made, stat.S_IMODE(info.st_mode))
                        finally:
                            os.close(made)
                        subdirectories.append(join(below, name))
                        continue
                    if not stat.S_ISREG(info.st_mode):
                        continue
                    files += 1
                    copied_bytes += info.st_size
                    if files > COPY_MAX_FILES or copied_bytes > COPY_MAX_BYTES:
                        raise invalid_argument(
                            f"copy exceeds {COPY_MAX_FILES} files or {COPY_MAX_BYTES} bytes"
                        )
                    self._check_deadline()
                    fd, _ = self._open_regular(from_dir, name, source.requested)
                    try:
                        self._copy_file(fd, to_dir, name)
                    finally:
                        os.close(fd)
            pending.extend(reversed(subdirectories))

    def _regular_files(
        self, path: WorkspacePath, recursive: bool, skip_dirs: frozenset[str]
    ) -> Iterator[tuple[int, str, str, os.stat_result]]:
        """Regular files under the directory `path`, in name order, depth first, as (descriptor
        of their directory, name, workspace-relative path, lstat); symlinks are neither listed
        nor followed, and directories named in `skip_dirs` are not entered."""
        pending = [path.relative]
        while pending:
            self._check_deadline()
            relative = pending.pop()
            subdirectories: list[str] = []
            try:
                with self._anchor.directory(relative, requested=path.requested) as directory:
                    for name, info in _children(directory):
                        child = join(relative, name)
                        if stat.S_ISREG(info.st_mode):
                            yield directory, name, child, info
                        elif recursive and stat.S_ISDIR(info.st_mode) and name not in skip_dirs:
                            subdirectories.append(child)
            except Missing:
                continue  # removed while the walk ran
            pending.extend(reversed(subdirectories))

    @staticmethod
    def _lines(directory: int, name: str) -> Iterator[tuple[int, str]]:
        """Text lines of a file; binary files (a NUL in the first 8 KiB) and huge files yield
        none, and lines longer than SEARCH_MAX_LINE_BYTES are skipped (but counted)."""
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=directory)
        except OSError:
            return
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_size > SEARCH_MAX_FILE_BYTES:
                return
            if b"\x00" in handle.read(BINARY_SNIFF_BYTES):
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

    # operations ---------------------------------------------------------------------------------

    def resolve(self, user_path: str, *, follow_final: bool = True) -> WorkspacePath:
        return resolve(self._workspace, self._allowed_paths, user_path, follow_final=follow_final)

    def stat(self, path: WorkspacePath) -> FileInfo | None:
        with self._entry(path) as entry:
            return None if entry is None else self._info(path.relative, entry[2])

    def read_file(self, path: WorkspacePath, *, max_bytes: int) -> FileContent:
        try:
            with self._anchor.parent(path.relative, requested=path.requested) as (directory, name):
                fd, info = self._open_regular(directory, name, path.requested)
        except Missing:
            raise not_found(f"file not found: {path.requested}") from None
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(max_bytes)
        return FileContent(data=data, size_bytes=info.st_size)

    def write_file(
        self,
        path: WorkspacePath,
        data: bytes,
        *,
        create_parents: bool = True,
        mode: int | None = None,
    ) -> None:
        if path.is_root:
            raise invalid_argument("path is the workspace root")
        with self._new_entry(path, create_parents) as (directory, name):
            existing = lstat_at(directory, name)
            if existing is not None and not stat.S_ISREG(existing.st_mode):
                raise invalid_argument(f"path exists and is not a regular file: {path.requested}")
            if mode is None:
                mode = stat.S_IMODE(existing.st_mode) if existing is not None else NEW_FILE_MODE
            self._write_atomically(directory, name, data, mode)

    def list_dir(
        self,
        path: WorkspacePath,
        *,
        recursive: bool = False,
        max_entries: int,
        skip_dirs: frozenset[str] = SKIPPED_DIRS,
        max_depth: int | None = None,
    ) -> Listing:
        with self._existing(path, "path") as (_, _, info):
            if not stat.S_ISDIR(info.st_mode):
                raise invalid_argument(f"path is not a directory: {path.requested}")
        entries: list[FileInfo] = []
        truncated = False
        pending = deque([(path.relative, 1)])
        while pending and not truncated:
            relative, depth = pending.popleft()
            self._check_deadline()
            descend = recursive and (max_depth is None or depth < max_depth)
            try:
                with self._anchor.directory(relative, requested=path.requested) as directory:
                    children = _children(directory)
            except Missing:
                continue  # removed while the listing ran
            for name, child_info in children:
                if len(entries) >= max_entries:
                    truncated = True
                    break
                child = join(relative, name)
                entries.append(self._info(child, child_info))
                if descend and stat.S_ISDIR(child_info.st_mode) and name not in skip_dirs:
                    pending.append((child, depth + 1))
        return Listing(entries=entries, truncated=truncated)

    def _files_at(
        self, path: WorkspacePath, recursive: bool, skip_dirs: frozenset[str]
    ) -> Iterator[tuple[int, str, str, os.stat_result]]:
        """The regular file `path`, or the regular files under the directory `path`."""
        with self._existing(path, "path") as (directory, name, info):
            if stat.S_ISREG(info.st_mode):
                yield directory, name, path.relative, info
                return
            if not stat.S_ISDIR(info.st_mode):
                raise invalid_argument(f"not a file or directory: {path.requested}")
        yield from self._regular_files(path, recursive, skip_dirs)

    def walk_files(
        self,
        path: WorkspacePath,
        *,
        recursive: bool = True,
        max_files: int,
        skip_dirs: frozenset[str] = SKIPPED_DIRS,
        include: Callable[[str], bool] | None = None,
    ) -> Listing:
        entries: list[FileInfo] = []
        for _, _, relative, info in self._files_at(path, recursive, skip_dirs):
            if include is not None and not include(relative):
                continue
            if len(entries) >= max_files:
                return Listing(entries=entries, truncated=True)
            entries.append(self._info(relative, info))
        return Listing(entries=entries, truncated=False)

    def mkdir(
        self, path: WorkspacePath, *, parents: bool = True, mode: int = 0o755, exist_ok: bool = True
    ) -> bool:
        with self._new_entry(path, parents) as (directory, name):
            existing = lstat_at(directory, name)
            if existing is None:
                try:
                    os.mkdir(name, dir_fd=directory)
                except FileExistsError:
                    existing = lstat_at(directory, name)
            if existing is not None:
                if not stat.S_ISDIR(existing.st_mode):
                    raise invalid_argument(f"path exists and is not a directory: {path.requested}")
                if not exist_ok:
                    raise invalid_argument(f"directory already exists: {path.requested}")
                return False
            made = open_child_directory(directory, name, path.requested)
            try:
                os.fchmod(made, mode)
            finally:
                os.close(made)
        return True

    def move(
        self,
        source: WorkspacePath,
        destination: WorkspacePath,
        *,
        overwrite: bool = False,
        create_parents: bool = True,
    ) -> None:
        if source.is_root:
            raise policy_denied("cannot move the workspace root")
        with (
            self._existing(source, "source") as (from_dir, from_name, _),
            self._destination(source, destination, overwrite, create_parents) as (to_dir, to_name),
        ):
            os.rename(from_name, to_name, src_dir_fd=from_dir, dst_dir_fd=to_dir)

    def copy(
        self,
        source: WorkspacePath,
        destination: WorkspacePath,
        *,
        recursive: bool = False,
        overwrite: bool = False,
        create_parents: bool = True,
    ) -> FileKind:
        with self._existing(source, "source") as (from_dir, from_name, info):
            if stat.S_ISLNK(info.st_mode):
                raise invalid_argument(f"fs.copy does not copy symlinks: {source.requested}")
            is_dir = stat.S_ISDIR(info.st_mode)
            if is_dir and not recursive:
                raise invalid_argument(
                    f"source is a directory; set recursive=true: {source.requested}"
                )
            if not is_dir and not stat.S_ISREG(info.st_mode):
                raise invalid_argument(f"not a regular file: {source.requested}")
            source_fd = -1
            if not is_dir:
                source_fd, _ = self._open_regular(from_dir, from_name, source.requested)
        try:
            with self._destination(source, destination, overwrite, create_parents) as (
                to_dir,
                to_name,
            ):
                try:
                    if is_dir:
                        os.mkdir(to_name, dir_fd=to_dir)
                        self._copy_tree(source, destination)
                    else:
                        self._copy_file(source_fd, to_dir, to_name)
                    # A copy that finished after the deadline is undone: the caller was told it
                    # failed.
                    self._check_deadline()
                except BaseException:
                    # No half-copied destination is left behind.
                    with contextlib.suppress(FileNotFoundError):
                        _remove(to_dir, to_name, lstat_at(to_dir, to_name))
                    raise
        finally:
            if source_fd >= 0:
                os.close(source_fd)
        return "dir" if is_dir else "file"

    def delete(
        self, path: WorkspacePath, *, recursive: bool = False, missing_ok: bool = False
    ) -> bool:
        if path.is_root:
            raise policy_denied("cannot delete the workspace root")
        with self._entry(path) as entry:
            if entry is None:
                if missing_ok:
                    return False
                raise not_found(f"path not found: {path.requested}")
            directory, name, info = entry
            if stat.S_ISDIR(info.st_mode) and not recursive:
                raise invalid_argument(f"path is a directory; set recursive=true: {path.requested}")
            _remove(directory, name, info)
        return True

    def search(
        self,
        path: WorkspacePath,
        matches: Callable[[str], bool],
        *,
        max_results: int,
        max_text_chars: int,
        skip_dirs: frozenset[str] = SKIPPED_DIRS,
    ) -> SearchResult:
        found: list[SearchMatch] = []
        for directory, name, relative, _ in self._files_at(path, True, skip_dirs):
            self._check_deadline()
            for number, line in self._lines(directory, name):
                if matches(line):
                    if len(found) >= max_results:
                        return SearchResult(matches=found, truncated=True)
                    text = line[:max_text_chars]
                    found.append(SearchMatch(path=relative, line=number, text=text))
        return SearchResult(matches=found, truncated=False)
