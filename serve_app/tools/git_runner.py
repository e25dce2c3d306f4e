"""The one way tools run git: in the session's workspace and repository only, with nothing the
repository's or a user's configuration could make it run.

- The repository is named explicitly (`--git-dir=<workspace>/.git --work-tree=<workspace>`), so
  neither a `.git` *file* (`gitdir: …`) nor `core.worktree` can point git elsewhere; a `.git` that
  is not a real directory is refused before git starts.
- Hooks are off (`core.hooksPath=/dev/null`), as are the fsmonitor hook, the `ext::` transport,
  an `core.sshCommand` from configuration, and, for the commands that show diffs, external diff
  drivers and textconv filters (`--no-ext-diff --no-textconv`).
- Only the repository's own configuration is read: no system or user (global) file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath

from serve_app.domain.errors import policy_denied
from serve_app.domain.paths import WorkspacePath
from serve_app.runtime.interface import CommandResult, WorkspaceRuntime
from serve_app.tools.base import ToolContext

HARDENING = (
    "--literal-pathspecs",
    "-c",
    "color.ui=false",
    "-c",
    "core.quotepath=false",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.sshCommand=ssh",
    "-c",
    "protocol.ext.allow=never",
)
# The environment of every git run: no configuration but the repository's own.
ENVIRONMENT = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"}
_SHOWS_DIFFS = frozenset({"diff", "show", "log"})
GIT_DIR = ".git"


def is_git_path(path: WorkspacePath) -> bool:
    """Whether a resolved path is a repository directory (`.git`, at any depth) or inside one."""
    return GIT_DIR in path.relative.split("/")


async def repository(runtime: WorkspaceRuntime) -> bool:
    """Whether the workspace is a repository: True for a real `.git` directory, False when there
    is none; anything else at `.git` (a `gitdir:` file, a link) is refused."""
    entry = WorkspacePath(real=runtime.workspace / GIT_DIR, relative=GIT_DIR, requested=GIT_DIR)
    info = await runtime.stat(entry)
    if info is None:
        return False
    if info.kind != "dir":
        raise policy_denied(
            ".git is not a directory: a .git file or link could point git outside the workspace"
        )
    return True


def git_argv(
    workspace: PurePosixPath,
    args: Sequence[str],
    *,
    repository: bool,
    identity: tuple[str, str] | None = None,
) -> list[str]:
    """git's command line: the session's repository (when it has one), the hardening options,
    the commit identity, then `args` (`--no-ext-diff --no-textconv` after a diff command)."""
    argv = ["git"]
    if repository:
        argv += [f"--git-dir={workspace / GIT_DIR}", f"--work-tree={workspace}"]
    argv += HARDENING
    if identity is not None:
        argv += ["-c", f"user.name={identity[0]}", "-c", f"user.email={identity[1]}"]
    if args and args[0] in _SHOWS_DIFFS:
        return [*argv, args[0], "--no-ext-diff", "--no-textconv", *args[1:]]
    return [*argv, *args]


async def run_git(
    ctx: ToolContext,
    args: Sequence[str],
    *,
    output_limit: int,
    stdin: bytes | None = None,
    identity: tuple[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> CommandResult:
    """Run git in the workspace with the rules above."""
    argv = git_argv(
        ctx.workspace, args, repository=await repository(ctx.runtime), identity=identity
    )
    return await ctx.run(
        argv,
        cwd=ctx.workspace,
        timeout=ctx.remaining(),
        stdin=stdin,
        output_limit=output_limit,
        env={**ENVIRONMENT, **(env or {})},
    )
