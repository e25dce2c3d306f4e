"""git stays in the session's repository, whatever the workspace's files say: attacks with only
fs.* and git.* tools (real git, the sandboxed runtime)."""

from __future__ import annotations

from pathlib import Path

import pytest

from serve_app.domain.errors import ErrorCode
from serve_app.domain.models import Session
from serve_app.execution.executor import ExecutionService
from tests.support.execution import fails, make_session, ok, run
from tests.support.git_repos import commit_file, init_repo
from tests.support.git_repos import git as setup_git

SECRET = "other-tenant-secret-text"


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """Another tenant's repository on the same machine."""
    return init_repo(tmp_path / "other-tenant" / "repo", {"secret.txt": SECRET + "\n"})


@pytest.fixture
def session(workspace: Path) -> Session:
    return make_session(workspace)


async def test_a_gitdir_file_is_refused(
    executor: ExecutionService, session: Session, workspace: Path, victim: Path
) -> None:
    planting = {"path": ".git", "content": f"gitdir: {victim / '.git'}\n"}
    await fails(executor, session, "fs.write_file", planting, ErrorCode.POLICY_DENIED)
    # As a copied source or the session's own code could leave it:
    (workspace / ".git").write_text(planting["content"])
    for tool, args in (("git.show", {}), ("git.log", {}), ("git.status", {})):
        refused = await fails(executor, session, tool, args, ErrorCode.POLICY_DENIED)
        assert refused.error is not None and ".git is not a directory" in refused.error.message
        assert SECRET not in str(refused.output)


async def test_core_worktree_cannot_send_git_outside(
    executor: ExecutionService, session: Session, workspace: Path, victim: Path
) -> None:
    init_repo(workspace)
    setup_git(workspace, "config", "core.worktree", str(victim))
    status = await ok(executor, session, "git.status", {})
    assert "secret.txt" not in str(status)
    (workspace / "mine.txt").write_text("mine\n")
    await ok(executor, session, "git.commit", {"message": "mine", "all": True})
    assert setup_git(workspace, "show", "--name-only", "--format=", "HEAD").split() == ["mine.txt"]
    await ok(executor, session, "git.checkout", {"ref": "main"})
    assert (victim / "secret.txt").read_text() == SECRET + "\n"
    assert not (victim / "mine.txt").exists()


async def test_textconv_and_external_diff_from_config_do_not_run(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    init_repo(workspace, {"a.txt": "one\n"})
    marker = workspace / "ran"
    script = workspace / "tool.sh"
    script.write_text(f'#!/bin/sh\ntouch "{marker}"\ncat "$1"\n')
    script.chmod(0o755)
    (workspace / ".gitattributes").write_text("*.txt diff=evil\n")
    setup_git(workspace, "config", "diff.evil.textconv", str(script))
    setup_git(workspace, "config", "diff.external", str(script))
    (workspace / "a.txt").write_text("two\n")
    diff = await ok(executor, session, "git.diff", {})
    assert "+two" in diff["diff"]
    commit_file(workspace, "a.txt", "three\n")
    await ok(executor, session, "git.show", {})
    await ok(executor, session, "git.log", {"max_count": 2})
    assert not marker.exists(), "a command from the repository's config ran"


async def test_ssh_command_and_user_config_are_ignored(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    init_repo(workspace)
    marker = workspace / "ssh-ran"
    setup_git(workspace, "config", "core.sshCommand", f"touch {marker}; false")
    setup_git(workspace, "remote", "add", "far", "ssh://git@127.0.0.1:1/nowhere.git")
    home = workspace.parent / "home"
    (home / ".gitconfig").write_text(f"[core]\n\tsshCommand = touch {marker}; false\n")
    result = await run(executor, session, "git.fetch", {"remote": "far"})
    assert result.error is not None
    assert not marker.exists(), "core.sshCommand from configuration ran"


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("fs.write_file", {"path": ".git/config", "content": "[core]\n"}),
        ("fs.write_file", {"path": ".git/hooks/pre-commit", "content": "#!/bin/sh\n"}),
        ("fs.mkdir", {"path": ".git/hooks/more"}),
        ("fs.delete", {"path": ".git/HEAD"}),
        ("fs.delete", {"path": ".git", "recursive": True}),
        ("fs.move", {"source_path": ".git/HEAD", "destination_path": "HEAD"}),
        ("fs.move", {"source_path": "README.md", "destination_path": ".git/info/x"}),
        ("fs.copy", {"source_path": "README.md", "destination_path": ".git/config"}),
        ("fs.write_file", {"path": "vendor/lib/.git/config", "content": "[core]\n"}),
    ],
)
async def test_file_tools_leave_git_directories_alone(
    executor: ExecutionService, session: Session, workspace: Path, tool: str, args: dict[str, str]
) -> None:
    init_repo(workspace)
    before = {p: p.read_bytes() for p in (workspace / ".git").rglob("*") if p.is_file()}
    refused = await fails(executor, session, tool, args, ErrorCode.POLICY_DENIED)
    assert refused.error is not None and "fs tools do not change .git" in refused.error.message
    after = {p: p.read_bytes() for p in (workspace / ".git").rglob("*") if p.is_file()}
    assert after == before


async def test_a_symlink_into_git_is_refused_too(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    init_repo(workspace)
    (workspace / "cfg").symlink_to(".git/config")
    await fails(
        executor, session, "fs.write_file", {"path": "cfg", "content": "x"}, ErrorCode.POLICY_DENIED
    )
    patch = (
        "diff --git a/.git/config b/.git/config\n--- a/.git/config\n+++ b/.git/config\n"
        "@@ -1 +1 @@\n-[core]\n+[core]\n"
    )
    await fails(executor, session, "fs.patch", {"unified_diff": patch}, ErrorCode.POLICY_DENIED)
    reading = await ok(executor, session, "fs.read_file", {"path": ".git/HEAD"})
    assert reading["content"].startswith("ref: refs/heads/main")
