"""File operations on a local workspace directory, through the path jail.

The synchronous half of the local runtime: `LocalRuntime` runs these on a thread pool. Every
path is a `WorkspacePath` resolved by `resolve`; files are opened with O_NOFOLLOW on the resolved
real path, so a symlink swapped in after the check is not followed either, and walks never follow
symlinks.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path, PurePath

from serve_app.domain.errors import invalid_argument, not_found, policy_denied
from serve_app.domain.paths import WorkspacePath, resolve
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


def _open_flags(base: int) -> int:
    return base | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def _kind(mode: int) -> FileKind:
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    return "other"


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return path.lstat()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _existing(path: WorkspacePath) -> tuple[Path, os.stat_result]:
    """The entry itself (never through a final symlink), or `not_found`."""
    real = Path(path.real)
    info = _lstat(real)
    if info is None:
        raise not_found(f"path not found: {path.requested}")
    return real, info


def _is_within(path: PurePath, ancestor: PurePath) -> bool:
    return path == ancestor or ancestor in path.parents


def _sorted_children(directory: Path) -> list[os.DirEntry[str]]:
    with os.scandir(directory) as scan:
        return sorted(scan, key=lambda child: child.name)


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
        self._root = Path(os.path.realpath(workspace))
        self._deadline = deadline

    # helpers ------------------------------------------------------------------------------------

    def _check_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline()

    def _display(self, real: Path) -> str:
        return real.relative_to(self._root).as_posix() or "."

    def _info(self, path: Path, info: os.stat_result) -> FileInfo:
        return FileInfo(
            path=self._display(path),
            kind=_kind(info.st_mode),
            size_bytes=info.st_size,
            mode=stat.S_IMODE(info.st_mode),
            modified_at=info.st_mtime,
        )

    def _make_dirs(self, directory: Path, requested: str) -> bool:
        """Create `directory` and its missing ancestors ; True when
        something was created."""
        missing: list[Path] = []
        current = directory
        while not current.is_dir():
            if os.path.lexists(current):
                raise invalid_argument(f"parent is not a directory: {requested}")
            missing.append(current)
            current = current.parent
        for path in reversed(missing):
            try:
                os.mkdir(path)
            except FileExistsError:
                if not path.is_dir():
                    raise invalid_argument(f"parent is not a directory: {requested}") from None
        return bool(missing)

    def _ensure_parent(self, target: WorkspacePath, create: bool) -> None:
        parent = Path(target.real).parent
        if parent.is_dir():
            return
        if not create:
            raise not_found(f"parent directory does not exist: {target.requested}")
        if parent.exists():
            raise invalid_argument(f"parent is not a directory: {target.requested}")
        self._make_dirs(parent, target.requested)
        # The chain was checked lexically; check once more now that it exists.
        self.resolve(self._display(parent))

    def _prepare_destination(
        self,
        source: WorkspacePath,
        destination: WorkspacePath,
        overwrite: bool,
        create_parents: bool,
    ) -> None:
        if destination.is_root:
            raise invalid_argument("destination is the workspace root")
        if _is_within(destination.real, source.real):
            raise invalid_argument("destination is inside the source")
        if _is_within(source.real, destination.real):
            # Replacing an ancestor of the source would delete the source before it is moved.
            raise invalid_argument("source is inside the destination")
        real = Path(destination.real)
        existing = _lstat(real)
        if existing is not None:
            if not overwrite:
                raise invalid_argument(f"destination exists: {destination.requested}")
            if stat.S_ISDIR(existing.st_mode):
                shutil.rmtree(real)
            else:
                real.unlink()
        self._ensure_parent(destination, create_parents)

    def _open_regular(self, path: WorkspacePath) -> tuple[int, os.stat_result]:
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

    def _write_atomically(self, path: Path, data: bytes, mode: int) -> None:
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(temporary, _open_flags(os.O_WRONLY | os.O_CREAT | os.O_EXCL), mode)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                os.fchmod(handle.fileno(), mode)
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    def _copy_file(self, source: Path, destination: Path) -> int:
        src_fd = os.open(source, _open_flags(os.O_RDONLY | os.O_NONBLOCK))
        try:
            info = os.fstat(src_fd)
            flags = _open_flags(os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            dst_fd = os.open(destination, flags, stat.S_IMODE(info.st_mode))
            with os.fdopen(dst_fd, "wb") as out, os.fdopen(os.dup(src_fd), "rb") as src:
                # Chunk by chunk, so that a copy past its deadline stops (and frees its thread).
                while chunk := src.read(COPY_CHUNK_BYTES):
                    self._check_deadline()
                    out.write(chunk)
            return info.st_size
        finally:
            os.close(src_fd)

    def _copy_tree(self, source: Path, destination: Path) -> None:
        files = copied_bytes = 0
        pending = [source]
        while pending:
            self._check_deadline()
            directory = pending.pop()
            children = _sorted_children(directory)
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
                self._check_deadline()
                self._copy_file(Path(child.path), target_dir / child.name)
            pending.extend(
                Path(child.path)
                for child in reversed(children)
                if child.is_dir(follow_symlinks=False)
            )

    def _regular_files(
        self, root: Path, recursive: bool, skip_dirs: frozenset[str]
    ) -> Iterator[tuple[Path, os.stat_result]]:
        """Regular files under `root`, in name order, depth first; symlinks are neither listed
        nor followed, and directories named in `skip_dirs` are not entered."""
        pending = [root]
        while pending:
            self._check_deadline()
            directory = pending.pop()
            subdirectories: list[Path] = []
            for child in _sorted_children(directory):
                try:
                    info = child.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if stat.S_ISREG(info.st_mode):
                    yield Path(child.path), info
                elif recursive and stat.S_ISDIR(info.st_mode) and child.name not in skip_dirs:
                    subdirectories.append(Path(child.path))
            pending.extend(reversed(subdirectories))

    @staticmethod
    def _lines(path: Path) -> Iterator[tuple[int, str]]:
        """Text lines of a file; binary files (a NUL in the first 8 KiB) and huge files yield
        none, and lines longer than SEARCH_MAX_LINE_BYTES are skipped (but counted)."""
        try:
            fd = os.open(path, _open_flags(os.O_RDONLY | os.O_NONBLOCK))
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
        real = Path(path.real)
        info = _lstat(real)
        return None if info is None else self._info(real, info)

    def read_file(self, path: WorkspacePath, *, max_bytes: int) -> FileContent:
        fd, info = self._open_regular(path)
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
        real = Path(path.real)
        existing = _lstat(real)
        if existing is not None and not stat.S_ISREG(existing.st_mode):
            raise invalid_argument(f"path exists and is not a regular file: {path.requested}")
        self._ensure_parent(path, create_parents)
        if mode is None:
            mode = stat.S_IMODE(existing.st_mode) if existing is not None else NEW_FILE_MODE
        self._write_atomically(real, data, mode)

    def list_dir(
        self,
        path: WorkspacePath,
        *,
        recursive: bool = False,
        max_entries: int,
        skip_dirs: frozenset[str] = SKIPPED_DIRS,
        max_depth: int | None = None,
    ) -> Listing:
        real, info = _existing(path)
        if not stat.S_ISDIR(info.st_mode):
            raise invalid_argument(f"path is not a directory: {path.requested}")
        entries: list[FileInfo] = []
        truncated = False
        pending = deque([(real, 1)])
        while pending and not truncated:
            directory, depth = pending.popleft()
            self._check_deadline()
            descend = recursive and (max_depth is None or depth < max_depth)
            for child in _sorted_children(directory):
                if len(entries) >= max_entries:
                    truncated = True
                    break
                child_info = child.stat(follow_symlinks=False)
                entries.append(self._info(Path(child.path), child_info))
                if descend and stat.S_ISDIR(child_info.st_mode) and child.name not in skip_dirs:
                    pending.append((Path(child.path), depth + 1))
        return Listing(entries=entries, truncated=truncated)

    def walk_files(
        self,
        path: WorkspacePath,
        *,
        recursive: bool = True,
        max_files: int,
        skip_dirs: frozenset[str] = SKIPPED_DIRS,
        include: Callable[[str], bool] | None = None,
    ) -> Listing:
        real, info = _existing(path)
        if stat.S_ISREG(info.st_mode):
            candidates: Iterator[tuple[Path, os.stat_result]] = iter([(real, info)])
        elif stat.S_ISDIR(info.st_mode):
            candidates = self._regular_files(real, recursive, skip_dirs)
        else:
            raise invalid_argument(f"not a file or directory: {path.requested}")
        entries: list[FileInfo] = []
        for file, file_info in candidates:
            found = self._info(file, file_info)
            if include is not None and not include(found.path):
                continue
            if len(entries) >= max_files:
                return Listing(entries=entries, truncated=True)
            entries.append(found)
        return Listing(entries=entries, truncated=False)

    def mkdir(
        self, path: WorkspacePath, *, parents: bool = True, mode: int = 0o755, exist_ok: bool = True
    ) -> bool:
        real = Path(path.real)
        existing = _lstat(real)
        if existing is not None:
            if not stat.S_ISDIR(existing.st_mode):
                raise invalid_argument(f"path exists and is not a directory: {path.requested}")
            if not exist_ok:
                raise invalid_argument(f"directory already exists: {path.requested}")
            return False
        if parents:
            if self._make_dirs(real.parent, path.requested):
                # The chain was checked lexically; check once more now that it exists.
                self.resolve(self._display(real.parent))
        elif not real.parent.is_dir():
            raise not_found(f"parent directory does not exist: {path.requested}")
        real.mkdir()
        os.chmod(real, mode)
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
        if _lstat(Path(source.real)) is None:
            raise not_found(f"source not found: {source.requested}")
        self._prepare_destination(source, destination, overwrite, create_parents)
        os.rename(source.real, destination.real)

    def copy(
        self,
        source: WorkspacePath,
        destination: WorkspacePath,
        *,
        recursive: bool = False,
        overwrite: bool = False,
        create_parents: bool = True,
    ) -> FileKind:
        info = _lstat(Path(source.real))
        if info is None:
            raise not_found(f"source not found: {source.requested}")
        if stat.S_ISLNK(info.st_mode):
            raise invalid_argument(f"fs.copy does not copy symlinks: {source.requested}")
        is_dir = stat.S_ISDIR(info.st_mode)
        if is_dir and not recursive:
            raise invalid_argument(f"source is a directory; set recursive=true: {source.requested}")
        if not is_dir and not stat.S_ISREG(info.st_mode):
            raise invalid_argument(f"not a regular file: {source.requested}")
        self._prepare_destination(source, destination, overwrite, create_parents)
        real = Path(destination.real)
        try:
            if is_dir:
                self._copy_tree(Path(source.real), real)
            else:
                self._copy_file(Path(source.real), real)
            # A copy that finished after the deadline is undone: the caller was told it failed.
            self._check_deadline()
        except BaseException:
            # No half-copied destination is left behind.
            if real.is_dir() and not real.is_symlink():
                shutil.rmtree(real, ignore_errors=True)
            else:
                real.unlink(missing_ok=True)
            raise
        return "dir" if is_dir else "file"

    def delete(
        self, path: WorkspacePath, *, recursive: bool = False, missing_ok: bool = False
    ) -> bool:
        if path.is_root:
            raise policy_denied("cannot delete the workspace root")
        real = Path(path.real)
        info = _lstat(real)
        if info is None:
            if missing_ok:
                return False
            raise not_found(f"path not found: {path.requested}")
        if stat.S_ISDIR(info.st_mode):
            if not recursive:
                raise invalid_argument(f"path is a directory; set recursive=true: {path.requested}")
            shutil.rmtree(real)
        else:
            real.unlink()
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
        real, info = _existing(path)
        if stat.S_ISREG(info.st_mode):
            files: Iterator[Path] = iter([real])
        elif stat.S_ISDIR(info.st_mode):
            files = (file for file, _ in self._regular_files(real, True, skip_dirs))
        else:
            raise invalid_argument(f"not a file or directory: {path.requested}")
        found: list[SearchMatch] = []
        for file in files:
            self._check_deadline()
            for number, line in self._lines(file):
                if matches(line):
                    if len(found) >= max_results:
                        return SearchResult(matches=found, truncated=True)
                    text = line[:max_text_chars]
                    found.append(SearchMatch(path=self._display(file), line=number, text=text))
        return SearchResult(matches=found, truncated=False)
