"""One contract suite for both workspace runtimes: the fs.* and git.* tools, driven through the
ExecutionService, must give the same results, limits and error codes whether the session's
workspace is a local directory or a runner pod reached through exec.

`runtime_session` gives each test a session of one kind:

- `local`: the local runtime (bubblewrap sandbox, files in the service);
- `kubernetes`: a pod of the Kubernetes emulator (`kube_cluster`), every operation a WebSocket
  exec. The emulator does not model scheduling, image pulls, real RBAC or a container runtime:
  its execs run the host's commands (GNU coreutils, dash) in a bubblewrap sandbox with the pod's
  directory at `/workspace`;
- `kubernetes-busybox`: the same runtime with the exec as a local process whose PATH puts BusyBox
  applets first, as in an Alpine runner image (skipped without a `busybox` binary).

`test_both_runtimes_answer_alike` runs one scenario on a local and a pod session side by side and
compares every answer (timestamps, commit ids and the workspace's own path left out).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from serve_app.domain.errors import ErrorCode
from serve_app.domain.models import Session
from serve_app.execution.executor import ExecutionService
from serve_app.runtime.sandbox import Sandbox
from serve_app.tools import build_registry
from tests.conftest import TEST_GIT_SCHEMES
from tests.runtime.test_kubernetes_runtime import Pod, make_pod
from tests.support.execution import make_session, make_workspace, run
from tests.support.git_repos import git as setup_git
from tests.support.git_repos import init_repo


@dataclass
class Case:
    kind: str
    executor: ExecutionService
    workspace: Path
    """The workspace on the host (for setup and checks)."""
    workdir: str
    """The workspace as commands name it."""
    pod: Pod | None = None

    def session(self, allowed_paths: list[str] | None = None) -> Session:
        if self.pod is not None:
            return self.pod.session(allowed_paths)
        return make_session(self.workspace, allowed_paths)

    async def call(
        self, tool: str, args: dict[str, Any], session: Session | None = None
    ) -> tuple[str | None, Any]:
        """(error code or None, output) of one call."""
        result = await run(self.executor, session or self.session(), tool, args)
        if result.error is not None:
            assert result.exit_code != 0
            return str(result.error.code), result.output
        assert result.exit_code == 0
        return None, result.output

    async def ok(self, tool: str, args: dict[str, Any], **kw: Any) -> Any:
        code, output = await self.call(tool, args, **kw)
        assert code is None, (tool, args, output)
        return output

    async def fails(self, tool: str, args: dict[str, Any], code: ErrorCode, **kw: Any) -> Any:
        got, output = await self.call(tool, args, **kw)
        assert got == code, (tool, args, got, output)
        return output


def local_case(tmp_path: Path) -> Case:
    workspace = make_workspace(tmp_path / "local")
    executor = ExecutionService(
        build_registry(), sandbox=Sandbox(git_protocols=tuple(TEST_GIT_SCHEMES))
    )
    return Case("local", executor, workspace, str(workspace))


def pod_case(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> Case:
    pod = make_pod(request, "emulator" if kind == "kubernetes" else "busybox", tmp_path)
    return Case(kind, pod.executor(), pod.host_workspace, pod.workdir, pod)


@pytest.fixture(params=["local", "kubernetes", "kubernetes-busybox"])
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Case]:
    made = (
        local_case(tmp_path)
        if request.param == "local"
        else pod_case(request, request.param, tmp_path)
    )
    yield made
    made.executor.close()


@pytest.fixture
def runtime_session(case: Case) -> tuple[ExecutionService, Session]:
    """(executor, session) of one runtime kind."""
    return case.executor, case.session()


def sample_tree(root: Path) -> None:
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "main.py").write_text("def main():\n    return 'hello'\n")
    (root / "src" / "pkg" / "util.py").write_text("HELLO = 1\n")
    (root / "README.md").write_text("# hello\n")
    os.chmod(root / "README.md", 0o640)
    (root / "data.bin").write_bytes(b"\x89PNG\x00\x01hello")
    (root / "docs").mkdir()
    (root / "docs" / "guide.md").write_text("guide\n")
    (root / "to-src").symlink_to("src")
    (root.parent / "outside").mkdir(exist_ok=True)
    (root.parent / "outside" / "secret.txt").write_text("secret\n")
    (root / "escape").symlink_to("../outside")


# fs.* -------------------------------------------------------------------------------------------


async def test_write_read_round_trip(case: Case) -> None:
    text = "héllo\nwörld\n"
    written = await case.ok("fs.write_file", {"path": "notes/a.txt", "content": text})
    assert written == {
        "path": "notes/a.txt",
        "bytes_written": len(text.encode()),
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
    }
    read = await case.ok("fs.read_file", {"path": "notes/a.txt"})
    assert read == {
        "path": "notes/a.txt",
        "encoding": "utf8",
        "content": text,
        "size_bytes": len(text.encode()),
        "truncated": False,
    }
    blob = bytes(range(256))
    payload = base64.b64encode(blob).decode()
    await case.ok("fs.write_file", {"path": "b.bin", "content": payload, "encoding": "base64"})
    assert (case.workspace / "b.bin").read_bytes() == blob
    back = await case.ok("fs.read_file", {"path": "b.bin"})
    assert (back["encoding"], back["content"], back["size_bytes"]) == ("base64", payload, 256)
    head = await case.ok("fs.read_file", {"path": "notes/a.txt", "max_bytes": 2})
    assert (head["content"], head["truncated"]) == ("h", True)
    absolute = await case.ok("fs.read_file", {"path": "/notes/a.txt"})
    assert absolute["content"] == text
    await case.fails(
        "fs.write_file",
        {"path": "x", "content": "a" * (1024 * 1024 + 1)},
        ErrorCode.INVALID_ARGUMENT,
    )
    await case.fails(
        "fs.write_file",
        {"path": "deep/x.txt", "content": "x", "create_parents": False},
        ErrorCode.NOT_FOUND,
    )
    await case.fails(
        "fs.write_file", {"path": ".git/config", "content": "x"}, ErrorCode.POLICY_DENIED
    )


async def test_list_and_stat(case: Case) -> None:
    sample_tree(case.workspace)
    (case.workspace / ".git" / "objects").mkdir(parents=True)
    listed = await case.ok("fs.list", {})
    assert [(e["path"], e["type"]) for e in listed["entries"]] == [
        (".git", "dir"),
        ("README.md", "file"),
        ("data.bin", "file"),
        ("docs", "dir"),
        ("escape", "symlink"),
        ("src", "dir"),
        ("to-src", "symlink"),
    ]
    readme = listed["entries"][1]
    assert (readme["size_bytes"], readme["mode"]) == (8, "0640")
    assert readme["modified_at"].endswith("Z")
    recursive = await case.ok("fs.list", {"recursive": True, "max_entries": 9})
    assert [e["path"] for e in recursive["entries"]] == [
        ".git",
        "README.md",
        "data.bin",
        "docs",
        "escape",
        "src",
        "to-src",
        "docs/guide.md",
        "src/main.py",
    ]
    assert (recursive["count"], recursive["truncated"]) == (9, True)
    sub = await case.ok("fs.list", {"path": "to-src"})
    assert [e["path"] for e in sub["entries"]] == ["src/main.py", "src/pkg"]
    stat_file = await case.ok("fs.stat", {"path": "README.md"})
    host = (case.workspace / "README.md").stat()
    assert stat_file["exists"] and stat_file["type"] == "file" and stat_file["mode"] == "0640"
    assert stat_file["size_bytes"] == host.st_size
    link = await case.ok("fs.stat", {"path": "escape"})
    assert link["type"] == "symlink"
    missing = await case.ok("fs.stat", {"path": "nope"})
    assert missing == {"path": "nope", "exists": False}
    await case.fails("fs.list", {"path": "README.md"}, ErrorCode.INVALID_ARGUMENT)
    await case.fails("fs.list", {"path": "nope"}, ErrorCode.NOT_FOUND)
    await case.fails("fs.list", {"path": "escape"}, ErrorCode.POLICY_DENIED)


async def test_jail_errors(case: Case) -> None:
    sample_tree(case.workspace)
    await case.fails("fs.read_file", {"path": "nope.txt"}, ErrorCode.NOT_FOUND)
    await case.fails("fs.read_file", {"path": "src"}, ErrorCode.INVALID_ARGUMENT)
    await case.fails("fs.read_file", {"path": "../outside/secret.txt"}, ErrorCode.POLICY_DENIED)
    await case.fails("fs.read_file", {"path": "escape/secret.txt"}, ErrorCode.POLICY_DENIED)
    await case.fails(
        "fs.write_file", {"path": "escape/new.txt", "content": "x"}, ErrorCode.POLICY_DENIED
    )
    assert not (case.workspace.parent / "outside" / "new.txt").exists()
    narrow = case.session(["src"])
    ok = await case.ok("fs.read_file", {"path": "src/main.py"}, session=narrow)
    assert ok["content"].startswith("def main")
    await case.fails("fs.read_file", {"path": "README.md"}, ErrorCode.POLICY_DENIED, session=narrow)
    (case.workspace / "src" / "to-docs").symlink_to("../docs")
    await case.fails(
        "fs.read_file", {"path": "src/to-docs/guide.md"}, ErrorCode.POLICY_DENIED, session=narrow
    )


async def test_mkdir_move_copy_delete(case: Case) -> None:
    sample_tree(case.workspace)
    made = await case.ok("fs.mkdir", {"path": "build/out", "mode": "0700"})
    assert made == {"path": "build/out", "created": True, "mode": "0700"}
    again = await case.ok("fs.mkdir", {"path": "build/out"})
    assert again["created"] is False
    await case.fails(
        "fs.mkdir", {"path": "build/out", "exist_ok": False}, ErrorCode.INVALID_ARGUMENT
    )
    await case.fails("fs.mkdir", {"path": "README.md"}, ErrorCode.INVALID_ARGUMENT)
    moved = await case.ok("fs.move", {"source_path": "docs", "destination_path": "manual"})
    assert moved == {"source_path": "docs", "destination_path": "manual", "moved": True}
    assert (case.workspace / "manual" / "guide.md").read_text() == "guide\n"
    await case.fails(
        "fs.move",
        {"source_path": "manual", "destination_path": "README.md"},
        ErrorCode.INVALID_ARGUMENT,
    )
    await case.fails(
        "fs.move",
        {"source_path": "src", "destination_path": "src/inner"},
        ErrorCode.INVALID_ARGUMENT,
    )
    await case.fails(
        "fs.move", {"source_path": "gone", "destination_path": "x"}, ErrorCode.NOT_FOUND
    )
    copied = await case.ok(
        "fs.copy", {"source_path": "src", "destination_path": "src-copy", "recursive": True}
    )
    assert copied == {
        "source_path": "src",
        "destination_path": "src-copy",
        "copied": True,
        "type": "dir",
    }
    assert (case.workspace / "src-copy" / "pkg" / "util.py").read_text() == "HELLO = 1\n"
    one = await case.ok("fs.copy", {"source_path": "README.md", "destination_path": "R2.md"})
    assert one["type"] == "file"
    assert stat.S_IMODE((case.workspace / "R2.md").stat().st_mode) == 0o640
    await case.fails(
        "fs.copy", {"source_path": "src", "destination_path": "s2"}, ErrorCode.INVALID_ARGUMENT
    )
    await case.fails(
        "fs.copy", {"source_path": "to-src", "destination_path": "s3"}, ErrorCode.INVALID_ARGUMENT
    )
    await case.fails(
        "fs.copy",
        {"source_path": "R2.md", "destination_path": "README.md"},
        ErrorCode.INVALID_ARGUMENT,
    )
    overwritten = await case.ok(
        "fs.copy", {"source_path": "R2.md", "destination_path": "README.md", "overwrite": True}
    )
    assert overwritten["copied"] is True
    deleted = await case.ok("fs.delete", {"path": "R2.md"})
    assert deleted == {"path": "R2.md", "deleted": True, "existed": True}
    await case.fails("fs.delete", {"path": "src-copy"}, ErrorCode.INVALID_ARGUMENT)
    await case.ok("fs.delete", {"path": "src-copy", "recursive": True})
    assert not (case.workspace / "src-copy").exists()
    forced = await case.ok("fs.delete", {"path": "gone", "force": True})
    assert forced == {"path": "gone", "deleted": False, "existed": False}
    await case.fails("fs.delete", {"path": "gone"}, ErrorCode.NOT_FOUND)
    await case.fails("fs.delete", {"path": "."}, ErrorCode.POLICY_DENIED)
    await case.ok("fs.delete", {"path": "escape"})
    assert (case.workspace.parent / "outside" / "secret.txt").exists()


async def test_search(case: Case) -> None:
    sample_tree(case.workspace)
    (case.workspace / ".git").mkdir()
    (case.workspace / ".git" / "HEAD").write_text("hello from git\n")
    found = await case.ok("fs.search", {"pattern": "(?i)hello"})
    assert [(m["path"], m["line"], m["snippet"]) for m in found["matches"]] == [
        ("README.md", 1, "# hello"),
        ("src/main.py", 2, "    return 'hello'"),
        ("src/pkg/util.py", 1, "HELLO = 1"),
    ]
    assert (found["count"], found["truncated"]) == (3, False)
    first = await case.ok("fs.search", {"pattern": "(?i)hello", "max_results": 1})
    assert (first["count"], first["truncated"]) == (1, True)
    scoped = await case.ok("fs.search", {"pattern": "HELLO", "path": "src/pkg/util.py"})
    assert [m["path"] for m in scoped["matches"]] == ["src/pkg/util.py"]
    await case.fails("fs.search", {"pattern": "("}, ErrorCode.INVALID_ARGUMENT)
    await case.fails("fs.search", {"pattern": "x", "path": "nope"}, ErrorCode.NOT_FOUND)


async def test_patch(case: Case) -> None:
    (case.workspace / "x.txt").write_text("old\n")
    diff = "--- a/x.txt\n+++ b/x.txt\n@@ -1 +1 @@\n-old\n+new\n"
    applied = await case.ok("fs.patch", {"unified_diff": diff})
    assert (applied["applied"], applied["changed_paths"]) == (True, ["x.txt"])
    assert (case.workspace / "x.txt").read_text() == "new\n"
    failed = await case.fails("fs.patch", {"unified_diff": diff}, ErrorCode.EXECUTION_FAILED)
    assert failed["applied"] is False
    escaping = "--- a/../evil.txt\n+++ b/../evil.txt\n@@ -0,0 +1 @@\n+x\n"
    await case.fails("fs.patch", {"unified_diff": escaping}, ErrorCode.POLICY_DENIED)


# git.* ------------------------------------------------------------------------------------------


async def test_git_coding_flow(case: Case) -> None:
    init_repo(case.workspace, {"README.md": "hello\n", "src/app.py": "print(1)\n"})
    clean = await case.ok("git.status", {})
    assert clean["status"] == ""
    (case.workspace / "src" / "app.py").write_text("print(2)\n")
    (case.workspace / "new.txt").write_text("new\n")
    status = await case.ok("git.status", {})
    assert status["status"] == " M src/app.py\n?? new.txt\n"
    diff = await case.ok("git.diff", {})
    assert "-print(1)\n+print(2)\n" in diff["diff"]
    committed = await case.ok("git.commit", {"message": "change app", "all": True})
    assert committed["committed"] is True
    log = await case.ok("git.log", {"max_count": 5})
    assert [e["subject"] for e in log["entries"]] == ["change app", "initial commit"]
    assert log["entries"][0]["author"] == "agent <agent@workspace.local>"
    after = await case.ok("git.status", {})
    assert after["status"] == ""
    branch = await case.ok("git.checkout", {"ref": "feature", "create": True})
    assert (branch["ref"], branch["created"]) == ("feature", True)
    assert setup_git(case.workspace, "branch", "--show-current").strip() == "feature"
    await case.fails("git.checkout", {"ref": "no-such-branch"}, ErrorCode.GIT_REPO_ERROR)
    await case.fails("git.log", {"ref": "no-such-ref"}, ErrorCode.GIT_REPO_ERROR)


async def test_git_never_runs_the_repository_drivers(case: Case) -> None:
    """The repository's config is read (in the pod: read ahead in one exec) and every driver it
    defines is overridden; an include is refused."""
    init_repo(case.workspace, {"a.txt": "one\n", ".gitattributes": "*.txt filter=evil diff=evil\n"})
    config = case.workspace / ".git" / "config"
    config.write_text(
        config.read_text()
        + '[filter "evil"]\n\tclean = touch ../pwned-clean\n\trequired = true\n'
        + '[diff "evil"]\n\ttextconv = touch ../pwned-diff\n'
    )
    (case.workspace / "a.txt").write_text("two\n")
    status = await case.ok("git.status", {})
    assert status["status"] == " M a.txt\n"
    diff = await case.ok("git.diff", {})
    assert "-one\n+two\n" in diff["diff"]
    await case.ok("git.commit", {"message": "two", "all": True})
    assert not list(case.workspace.parent.glob("pwned-*"))
    config.write_text(config.read_text() + "[include]\n\tpath = ../elsewhere\n")
    await case.fails("git.status", {}, ErrorCode.POLICY_DENIED)
    (case.workspace / ".git" / "commondir").write_text("../elsewhere\n")
    await case.fails("git.log", {}, ErrorCode.POLICY_DENIED)


async def test_git_outside_a_repository(case: Case) -> None:
    output = await case.fails("git.status", {}, ErrorCode.GIT_REPO_ERROR)
    assert "not a git repository" in output["output"].lower()


# both at once -----------------------------------------------------------------------------------


COMMIT_ID = re.compile(r"\b[0-9a-f]{7,40}\b")


def normalized(value: Any, workdir: str) -> Any:
    """An answer without what differs by nature: timestamps, commit ids, the workspace path."""
    if isinstance(value, dict):
        return {
            key: normalized(item, workdir)
            for key, item in value.items()
            if key not in ("modified_at", "commit", "hash", "date", "parents")
        }
    if isinstance(value, list | tuple):
        return [normalized(item, workdir) for item in value]
    if isinstance(value, str):
        return COMMIT_ID.sub("<commit>", value.replace(workdir, "<workspace>"))
    return value


SCENARIO: list[tuple[str, dict[str, Any]]] = [
    ("fs.list", {"recursive": True}),
    ("fs.read_file", {"path": "src/main.py"}),
    ("fs.read_file", {"path": "data.bin", "max_bytes": 4}),
    ("fs.read_file", {"path": "escape/secret.txt"}),
    ("fs.read_file", {"path": "nope"}),
    ("fs.stat", {"path": "to-src"}),
    ("fs.stat", {"path": "src"}),
    ("fs.write_file", {"path": "gen/out.txt", "content": "generated\n"}),
    ("fs.mkdir", {"path": "gen/sub", "mode": "0750"}),
    ("fs.copy", {"source_path": "src", "destination_path": "src2", "recursive": True}),
    ("fs.move", {"source_path": "src2", "destination_path": "gen/src2"}),
    ("fs.move", {"source_path": "gen", "destination_path": "gen/inside"}),
    ("fs.delete", {"path": "gen/src2"}),
    ("fs.search", {"pattern": "hello|HELLO"}),
    (
        "fs.patch",
        {"unified_diff": "--- a/docs/guide.md\n+++ b/docs/guide.md\n@@ -1 +1 @@\n-guide\n+new\n"},
    ),
    ("git.status", {}),
    ("git.diff", {}),
    ("git.commit", {"message": "work", "all": True}),
    ("git.status", {"short": False}),
    ("git.log", {"max_count": 3}),
    ("git.checkout", {"ref": "topic", "create": True}),
    ("git.log", {"ref": "nope"}),
    ("fs.list", {"recursive": True, "max_entries": 6}),
]


@pytest.mark.parametrize("pod_kind", ["kubernetes", "kubernetes-busybox"])
async def test_both_runtimes_answer_alike(
    request: pytest.FixtureRequest, tmp_path: Path, pod_kind: str
) -> None:
    local = local_case(tmp_path / "l")
    pod = pod_case(request, pod_kind, tmp_path / "p")
    try:
        answers: dict[str, list[Any]] = {}
        for each in (local, pod):
            sample_tree(each.workspace)
            init_repo(each.workspace, {"README.md": "# hello\n"})
            answers[each.kind] = [
                normalized(await each.call(tool, args), each.workdir) for tool, args in SCENARIO
            ]
        for (tool, args), mine, theirs in zip(
            SCENARIO, answers[pod.kind], answers["local"], strict=True
        ):
            assert mine == theirs, (tool, args)
    finally:
        local.executor.close()
        pod.executor.close()
