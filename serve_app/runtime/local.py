"""The local runtime: a workspace directory under `WORKSPACE_ROOT` on a volume every executor
replica shares. Commands run in a per-call sandbox (`Sandbox`); file operations run in the
service through the path jail (`LocalFiles`), on the executor's thread pool."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from serve_app.domain.errors import invalid_argument
from serve_app.domain.models import Session
from serve_app.domain.paths import WorkspacePath
from serve_app.execution.process import child_environment
from serve_app.runtime.interface import (
    DEFAULT_OUTPUT_LIMIT,
    SKIPPED_DIRS,
    CommandResult,
    FileContent,
    FileInfo,
    FileKind,
    Listing,
    SearchResult,
)
from serve_app.runtime.local_files import LocalFiles
from serve_app.runtime.sandbox import Mounts, Sandbox

T = TypeVar("T")
Blocking = Callable[[Callable[[], Any]], Awaitable[Any]]


async def _in_thread(function: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(function)


def session_dirs(workspace: Path) -> tuple[Path, Path]:
    """The session's HOME and TMP, beside its workspace and removed with it."""
    return workspace.parent / "home", workspace.parent / "tmp"


def ensure_dir(path: Path, owner: tuple[int, int] | None) -> None:
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        return
    if owner is not None:
        os.chown(path, *owner, follow_symlinks=False)


class LocalRuntime:
    """One session's workspace on this machine, for one tool call."""

    kind = "local"

    def __init__(
        self,
        session: Session,
        sandbox: Sandbox,
        *,
        network: bool = False,
        blocking: Blocking = _in_thread,
        check_deadline: Callable[[], None] | None = None,
        service_env: Mapping[str, str] | None = None,
    ) -> None:
        self._session = session
        self._sandbox = sandbox
        self._network = network
        self._blocking = blocking
        self._root = Path(os.path.realpath(session.workspace_path))
        self._home, self._tmp = session_dirs(Path(session.workspace_path))
        self._files = LocalFiles(
            Path(session.workspace_path),
            session.allowed_paths,
            owner=sandbox.owner,
            deadline=check_deadline,
        )
        self._env = child_environment(
            home=self._home, workspace=Path(session.workspace_path), service_env=service_env
        )
        self._mounts = Mounts(workspace=self._root, home=self._home, tmp=self._tmp, network=network)
        if sandbox.enabled:
            self._env["TMPDIR"] = "/tmp"
        else:
            self._env["TMPDIR"] = str(self._tmp)

    @property
    def workspace(self) -> PurePosixPath:
        return PurePosixPath(self._root)

    @property
    def visible_devices(self) -> str | None:
        return self._sandbox.visible_devices

    async def _call(self, function: Callable[[], T]) -> T:
        result: T = await self._blocking(function)
        return result

    # commands -------------------------------------------------------------------------------

    def _cwd(self, cwd: PurePosixPath | str | None) -> Path:
        if cwd is None:
            return self._root
        real = Path(os.path.realpath(str(cwd)))
        for allowed in (self._root, Path(os.path.realpath(self._tmp))):
            if real == allowed or allowed in real.parents:
                return real
        raise invalid_argument("working directory is outside the workspace")

    def _prepare(self) -> None:
        ensure_dir(self._home, self._sandbox.owner)
        ensure_dir(self._tmp, self._sandbox.owner)

    async def run(
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
        if not argv:
            raise ValueError("argv must not be empty")
        directory = self._cwd(cwd)
        child_env = self._env if env is None else {**self._env, **env}
        missing = self._missing(argv[0], directory, child_env)
        if missing is not None:
            return CommandResult(exit_code=-1, output=missing, truncated=False, timed_out=False)
        await self._call(self._prepare)
        mounts = replace(self._mounts, network=self._network if network is None else network)
        return await self._sandbox.run(
            argv,
            cwd=directory,
            mounts=mounts,
            env=child_env,
            timeout=timeout,
            stdin=stdin,
            output_limit=output_limit,
        )

    def _missing(self, command: str, cwd: Path, env: Mapping[str, str]) -> str | None:
        """The error for a command that cannot start in the sandbox, worded as spawning it
        bare would report it."""
        if "/" in command:
            path = Path(command) if os.path.isabs(command) else cwd / command
            if not self._sandbox.sees(str(path), self._mounts) or not path.exists():
                return f"cannot start {command}: No such file or directory"
            if os.access(path, os.X_OK) and path.is_file():
                return None
            return f"cannot start {command}: Permission denied"
        if self._which(command, env) is None:
            return f"cannot start {command}: No such file or directory"
        return None

    def _which(self, command: str, env: Mapping[str, str]) -> str | None:
        """`command` on the PATH of the sandbox: directories it does not see do not count."""
        entries = env.get("PATH", "").split(os.pathsep)
        seen = [entry for entry in entries if entry and self._sandbox.sees(entry, self._mounts)]
        return shutil.which(command, path=os.pathsep.join(seen))

    async def which(self, command: str) -> str | None:
        return self._which(command, self._env)

    @contextlib.asynccontextmanager
    async def temp_dir(self, prefix: str) -> AsyncIterator[PurePosixPath]:
        def create() -> str:
            self._prepare()
            path = tempfile.mkdtemp(prefix=prefix, dir=self._tmp)
            if self._sandbox.owner is not None:
                os.chown(path, *self._sandbox.owner)
            return path

        path = await self._call(create)
        try:
            yield PurePosixPath(path)
        finally:
            await self._call(partial(shutil.rmtree, path, True))

    # files ----------------------------------------------------------------------------------

    async def resolve(self, user_path: str, *, follow_final: bool = True) -> WorkspacePath:
        return await self._call(partial(self._files.resolve, user_path, follow_final=follow_final))

    async def stat(self, path: WorkspacePath) -> FileInfo | None:
        return await self._call(partial(self._files.stat, path))

    async def read_file(self, path: WorkspacePath, *, max_bytes: int) -> FileContent:
        return await self._call(partial(self._files.read_file, path, max_bytes=max_bytes))

    async def write_file(
        self,
        path: WorkspacePath,
        data: bytes,
        *,
        create_parents: bool = True,
        mode: int | None = None,
    ) -> None:
        await self._call(
            partial(self._files.write_file, path, data, create_parents=create_parents, mode=mode)
        )

    async def list_dir(
        self,
        path: WorkspacePath,
        *,
        recursive: bool = False,
        max_entries: int,
        skip_dirs: frozenset[str] = SKIPPED_DIRS,
    ) -> Listing:
        return await self._call(
            partial(
                self._files.list_dir,
                path,
                recursive=recursive,
                max_entries=max_entries,
                skip_dirs=skip_dirs,
            )
        )

    async def walk_files(
        self,
        path: WorkspacePath,
        *,
        recursive: bool = True,
        max_files: int,
        skip_dirs: frozenset[str] = SKIPPED_DIRS,
    ) -> Listing:
        return await self._call(
            partial(
                self._files.walk_files,
                path,
                recursive=recursive,
                max_files=max_files,
                skip_dirs=skip_dirs,
            )
        )

    async def mkdir(
        self, path: WorkspacePath, *, parents: bool = True, mode: int = 0o755, exist_ok: bool = True
    ) -> bool:
        return await self._call(
            partial(self._files.mkdir, path, parents=parents, mode=mode, exist_ok=exist_ok)
        )

    async def move(
        self,
        source: WorkspacePath,
        destination: WorkspacePath,
        *,
        overwrite: bool = False,
        create_parents: bool = True,
    ) -> None:
        await self._call(
            partial(
                self._files.move,
                source,
                destination,
                overwrite=overwrite,
                create_parents=create_parents,
            )
        )

    async def copy(
        self,
        source: WorkspacePath,
        destination: WorkspacePath,
        *,
        recursive: bool = False,
        overwrite: bool = False,
        create_parents: bool = True,
    ) -> FileKind:
        return await self._call(
            partial(
                self._files.copy,
                source,
                destination,
                recursive=recursive,
                overwrite=overwrite,
                create_parents=create_parents,
            )
        )

    async def delete(
        self, path: WorkspacePath, *, recursive: bool = False, missing_ok: bool = False
    ) -> bool:
        return await self._call(
            partial(self._files.delete, path, recursive=recursive, missing_ok=missing_ok)
        )

    async def search(
        self,
        path: WorkspacePath,
        matches: Callable[[str], bool],
        *,
        max_results: int,
        skip_dirs: frozenset[str] = SKIPPED_DIRS,
    ) -> SearchResult:
        return await self._call(
            partial(self._files.search, path, matches, max_results=max_results, skip_dirs=skip_dirs)
        )
