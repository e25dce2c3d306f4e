"""Local workspaces: `WORKSPACE_ROOT/<tenant>/<session>/repo`, with a per-session `home`
beside it."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import stat
from collections.abc import Mapping
from pathlib import Path

from serve_app.adapters.repo_sources import RepoSource, RepoSources
from serve_app.domain.errors import ErrorCode, ServiceError, invalid_argument
from serve_app.domain.ids import is_safe_id
from serve_app.domain.models import Principal, Runtime, Session
from serve_app.runtime.local import ensure_dir
from serve_app.runtime.sandbox import Mounts, Sandbox
from serve_app.tools.git_runner import ENVIRONMENT as GIT_ENVIRONMENT
from serve_app.tools.git_runner import HARDENING as GIT_HARDENING

COPY_MAX_FILES = 200_000
COPY_MAX_BYTES = 2 * 1024 * 1024 * 1024
CLONE_OUTPUT_LIMIT = 16 * 1024
_URL_CREDENTIALS = re.compile(r"(://)[^/@\s]+@")


def mask_credentials(text: str) -> str:
    return _URL_CREDENTIALS.sub(r"\1***@", text)


class LocalWorkspaceManager:
    def __init__(
        self,
        root: Path,
        *,
        source_repo_roots: list[str],
        clone_timeout_seconds: int,
        sandbox: Sandbox | None = None,
        sources: RepoSources | None = None,
    ) -> None:
        self._root = root
        self._sandbox = sandbox if sandbox is not None else Sandbox(mode="none")
        self._sources = sources or RepoSources(
            source_roots=source_repo_roots,
            workspace_root=root,
            artifact_root=root,
            allowed_schemes=list(self._sandbox.git_protocols),
        )
        self._clone_timeout = clone_timeout_seconds

    def session_dir(self, tenant_id: str, session_id: str) -> Path:
        if not is_safe_id(tenant_id) or not is_safe_id(session_id):
            raise invalid_argument("tenant and session ids must be safe path segments")
        return self._root / tenant_id / session_id

    async def create(
        self,
        session_id: str,
        principal: Principal,
        *,
        source_repo_path: str | None,
        repo_url: str | None,
        repo_ref: str | None,
        metadata: Mapping[str, str] | None = None,
    ) -> tuple[str, Runtime]:
        """The session's directory; `metadata` has nothing for this backend."""
        session_dir = self.session_dir(principal.tenant_id, session_id)
        # Both are checked before anything is made: a refused source leaves nothing behind.
        source = self._sources.local(source_repo_path) if source_repo_path else None
        remote = self._sources.remote(repo_url) if repo_url and source is None else None
        session_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            session_dir.mkdir()
        except FileExistsError:
            raise ServiceError(ErrorCode.ALREADY_EXISTS, "session already exists") from None
        repo = session_dir / "repo"
        try:
            for name in ("home", "tmp"):
                ensure_dir(session_dir / name)
            if source is not None:
                await asyncio.to_thread(_copy_source, source, repo)
            elif remote is not None:
                ensure_dir(repo)
                await self._clone(remote, repo_ref, repo, session_dir)
            else:
                ensure_dir(repo)
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, session_dir, True)
            raise
        return str(repo), Runtime(kind="local", workdir=str(repo))

    async def _clone(
        self, source: RepoSource, ref: str | None, repo: Path, session_dir: Path
    ) -> None:
        """A shallow clone into the empty workspace, in a sandbox with the network; a local
        source is mounted read-only into it, and only then may git use the file transport."""
        argv = ["git", *GIT_HARDENING, "clone", "--depth", "1"]
        if ref:
            argv += ["--branch", ref]
        url = f"file://{source.local}" if source.local is not None else source.url
        argv += ["--", url, str(repo)]
        home, tmp = session_dir / "home", session_dir / "tmp"
        local = () if source.local is None else (str(source.local),)
        mounts = Mounts(
            workspace=repo,
            home=home,
            tmp=tmp,
            network=True,
            readonly=local,
            git_protocols=("file",) if local else (),
        )
        result = await self._sandbox.run(
            argv,
            mounts=mounts,
            cwd=repo,
            env={**self._sandbox.environment(mounts), **GIT_ENVIRONMENT},
            timeout=self._clone_timeout,
            output_limit=CLONE_OUTPUT_LIMIT,
        )
        if result.exit_code != 0:
            reason = "timed out" if result.timed_out else "failed"
            detail = mask_credentials(result.output.strip())
            raise ServiceError(ErrorCode.EXECUTION_FAILED, f"git clone {reason}: {detail}")

    async def remove(self, session: Session) -> None:
        session_dir = Path(session.workspace_path).parent
        expected = self.session_dir(session.principal.tenant_id, session.id)
        if session_dir != expected:
            raise ServiceError(ErrorCode.INTERNAL, "session workspace is outside WORKSPACE_ROOT")
        await asyncio.to_thread(shutil.rmtree, session_dir, True)


def _copy_source(source: Path, destination: Path) -> None:
    """Copy directories and regular files with their modes; symlinks and devices are skipped."""
    files = total = 0
    destination.mkdir()
    for directory, dirnames, filenames in os.walk(source, followlinks=False):
        relative = Path(directory).relative_to(source)
        target = destination / relative
        for name in dirnames:
            if not os.path.islink(os.path.join(directory, name)):
                (target / name).mkdir(exist_ok=True)
        for name in filenames:
            path = Path(directory) / name
            info = path.lstat()
            if not stat.S_ISREG(info.st_mode):
                continue
            files += 1
            total += info.st_size
            if files > COPY_MAX_FILES or total > COPY_MAX_BYTES:
                raise invalid_argument(
                    f"source_repo_path exceeds {COPY_MAX_FILES} files or {COPY_MAX_BYTES} bytes"
                )
            shutil.copyfile(path, target / name, follow_symlinks=False)
            os.chmod(target / name, stat.S_IMODE(info.st_mode))
        shutil.copymode(directory, target)
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(directory, d))]
