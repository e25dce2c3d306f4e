"""Paths opened from a directory handle on the workspace, one component at a time.

The path jail (`serve_app.domain.paths.resolve`) decides *which* path a tool may touch and
returns it with every symlink already resolved. Between that check and the use, another process
may rename a directory or swap one for a symlink. So nothing here opens a path by its name from
`/`: the workspace is opened once, and every component of the resolved relative path is opened
from its parent's descriptor with `O_DIRECTORY | O_NOFOLLOW` (an `openat` per component), and the
final entry is acted on with the `*at` calls (`dir_fd=`) and `O_NOFOLLOW`. A component that has
become a symlink since the check fails the operation instead of being followed, so no concurrent
rename or symlink swap can make an operation act outside the workspace.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from serve_app.domain.errors import policy_denied

DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
HERE = "."


def file_flags(base: int) -> int:
    return base | os.O_NOFOLLOW | os.O_CLOEXEC


def parts(relative: str) -> list[str]:
    """The components of a jail-relative path ("." has none)."""
    return [] if relative == HERE else relative.split("/")


def join(relative: str, name: str) -> str:
    return name if relative == HERE else f"{relative}/{name}"


def within(relative: str, below: str) -> str:
    """`below` (itself jail-relative, "." for the top) inside `relative`."""
    return relative if below == HERE else join(relative, below)


def split(relative: str) -> tuple[str, str]:
    """(parent, name) of a jail-relative path other than "."."""
    parent, _, name = relative.rpartition("/")
    return parent or HERE, name


class Missing(Exception):
    """A component of the path does not exist (each operation words its own `not_found`)."""


class NotDirectory(Missing):
    """A component of the path is not a directory, so the path cannot exist."""


def lstat_at(directory: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=directory, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return None


def open_child_directory(directory: int, name: str, requested: str) -> int:
    """Open the directory `name` inside `directory`, never through a symlink."""
    try:
        return os.open(name, DIRECTORY_FLAGS, dir_fd=directory)
    except FileNotFoundError:
        raise Missing(name) from None
    except NotADirectoryError:
        info = lstat_at(directory, name)
        if info is not None and stat.S_ISLNK(info.st_mode):
            raise policy_denied(
                f"path changed while in use (a symlink replaced a directory): {requested}"
            ) from None
        if info is None:
            raise Missing(name) from None
        raise NotDirectory(name) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise policy_denied(
                f"path changed while in use (a symlink replaced a directory): {requested}"
            ) from None
        raise


class Anchor:
    """The workspace directory, from which every path is opened."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _open_root(self) -> int:
        return os.open(self.root, DIRECTORY_FLAGS)

    @contextlib.contextmanager
    def directory(self, relative: str, *, requested: str, create: bool = False) -> Iterator[int]:
        """A descriptor of the directory at `relative`, opened component by component. Missing
        components are created when `create` (as `mkdir -p` would), else `Missing` is raised."""
        fd = self._open_root()
        try:
            for name in parts(relative):
                try:
                    child = open_child_directory(fd, name, requested)
                except NotDirectory:
                    raise
                except Missing:
                    if not create:
                        raise
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(name, dir_fd=fd)
                    child = open_child_directory(fd, name, requested)
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def parent(
        self, relative: str, *, requested: str, create: bool = False
    ) -> Iterator[tuple[int, str]]:
        """(descriptor of the parent directory, final name) of `relative`; the workspace itself
        is (its own descriptor, ".")."""
        if relative == HERE:
            with self.directory(HERE, requested=requested) as fd:
                yield fd, HERE
            return
        parent, name = split(relative)
        with self.directory(parent, requested=requested, create=create) as fd:
            yield fd, name
