"""The local runtime: a workspace directory under `WORKSPACE_ROOT` on a volume every executor
replica shares. Commands run in a per-call sandbox (`Sandbox`); file operations run in the
service through the path jail (`LocalFiles`), on the executor's thread pool."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any, Concatenate, ParamSpec, TypeVar

from serve_app.domain.errors import invalid_argument
from serve_app.domain.models import Session
from serve_app.runtime.interface import (
    DEFAULT_OUTPUT_LIMIT,
    CommandResult,
)
from serve_app.runtime.local_files import LocalFiles
from serve_app.runtime.sandbox import Mounts, Sandbox

T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")
Blocking = Callable[[Callable[[], Any]], Awaitable[Any]]


async def _in_thread(function: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(function)


def session_dirs(workspace: Path) -> tuple[Path, Path]:
    """The session's HOME and TMP, beside its workspace and removed with it."""
    return workspace.parent / "home", workspace.parent / "tmp"


def ensure_dir(path: Path) -> None:
    path.mkdir(mode=0o700, exist_ok=True)


def _offloaded(
    operation: Callable[Concatenate[LocalFiles, P], R],
) -> Callable[Concatenate[LocalRuntime, P], Coroutine[Any, Any, R]]:
    """A `LocalFiles` operation as a coroutine method of the runtime, run on its thread pool."""

    async def call(runtime: LocalRuntime, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await runtime._call(partial(operation, runtime._files, *args, **kwargs))

    call.__name__ = operation.__name__
    call.__doc__ = operation.__doc__
    return call


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
    ) -> None:
        self._sandbox = sandbox
        self._network = network
        self._blocking = blocking
        self._root = Path(os.path.realpath(session.workspace_path))
        self._home, self._tmp = session_dirs(Path(session.workspace_path))
        self._files = LocalFiles(
            Path(session.workspace_path),
            session.allowed_paths,
            deadline=check_deadline,
        )
        self._mounts = Mounts(workspace=self._root, home=self._home, tmp=self._tmp, network=network)
        self._env = sandbox.environment(self._mounts)

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
        ensure_dir(self._home)
        ensure_dir(self._tmp)

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
        if not self._tmp.is_dir() or not self._home.is_dir():
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
        return shutil.which(
            command, path=self._sandbox.search_path(env.get("PATH", ""), self._mounts)
        )

    async def which(self, command: str) -> str | None:
        return self._which(command, self._env)

    @contextlib.asynccontextmanager
    async def temp_dir(self, prefix: str) -> AsyncIterator[PurePosixPath]:
        def create() -> str:
            self._prepare()
            return tempfile.mkdtemp(prefix=prefix, dir=self._tmp)

        path = await self._call(create)
        try:
            yield PurePosixPath(path)
        finally:
            await self._call(partial(shutil.rmtree, path, True))

    # files: LocalFiles' operations, each on the thread pool ------------------------------------

    resolve = _offloaded(LocalFiles.resolve)
    stat = _offloaded(LocalFiles.stat)
    read_file = _offloaded(LocalFiles.read_file)
    write_file = _offloaded(LocalFiles.write_file)
    list_dir = _offloaded(LocalFiles.list_dir)
    walk_files = _offloaded(LocalFiles.walk_files)
    mkdir = _offloaded(LocalFiles.mkdir)
    move = _offloaded(LocalFiles.move)
    copy = _offloaded(LocalFiles.copy)
    delete = _offloaded(LocalFiles.delete)
    search = _offloaded(LocalFiles.search)
