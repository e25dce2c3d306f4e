"""An agent's coding loop over HTTP through Ray Serve: clone a repository from a bare remote, read
the failing test, fix the code with fs.patch, see repo.test fail before and pass after, commit,
push, and find the commit on the remote."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ServeApp
from tests.support.git_repos import GitDaemon

pytestmark = pytest.mark.serve

CALC = "def add(a, b):\n    return a - b\n"
TEST = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
FIX = """--- a/calc.py
+++ b/calc.py
@@ -1,2 +1,2 @@
 def add(a, b):
-    return a - b
+    return a + b
"""


def bare_remote(root: Path) -> Path:
    env = {**os.environ, "GIT_AUTHOR_NAME": "seed", "GIT_AUTHOR_EMAIL": "seed@x",
           "GIT_COMMITTER_NAME": "seed", "GIT_COMMITTER_EMAIL": "seed@x"}  # fmt: skip
    work = root / "seed"
    work.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    (work / "calc.py").write_text(CALC)
    (work / "test_calc.py").write_text(TEST)
    (work / "pytest.ini").write_text("[pytest]\n")
    subprocess.run(["git", "-C", str(work), "add", "."], check=True)
    subprocess.run(["git", "-C", str(work), "commit", "-q", "-m", "seed"], check=True, env=env)
    remote = root / "origin.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(remote)], check=True)
    return remote


def test_clone_fix_test_commit_push(
    serve_app: ServeApp, tmp_path: Path, git_daemon: GitDaemon
) -> None:
    remote = bare_remote(tmp_path)
    principal = {"tenant_id": "e2e", "actor_id": "coder", "roles": ["developer", "platform_admin"]}
    with httpx.Client(base_url=serve_app.url, timeout=120) as http:
        created = http.post(
            "/v1/sessions",
            json={
                "principal": principal,
                "repo_url": git_daemon.url(remote),
                "repo_ref": "main",
                "metadata": {"git_author_name": "Agent", "git_author_email": "agent@example.com"},
            },
        )
        assert created.status_code == 201, created.text
        session = created.json()["session"]["id"]

        def call(tool: str, args: dict[str, object], approved: bool = False) -> httpx.Response:
            return http.post(
                f"/v1/sessions/{session}/tools/{tool}/invoke",
                json={"args": args, "approved": approved},
            )

        read = call("fs.read_file", {"path": "test_calc.py"})
        assert "assert add(2, 3) == 5" in read.json()["invocation"]["output"]["content"]
        before = call("repo.test", {})
        assert before.status_code == 200, before.text
        assert before.json()["invocation"]["output"]["exit_code"] != 0
        patched = call("fs.patch", {"unified_diff": FIX}, approved=True)
        assert patched.status_code == 200, patched.text
        after = call("repo.test", {})
        assert after.json()["invocation"]["output"]["exit_code"] == 0, after.text
        commit = call("git.commit", {"message": "Fix add", "all": True}, approved=True)
        assert commit.status_code == 200, commit.text
        push = call("git.push", {"remote": "origin", "refspec": "main"}, approved=True)
        assert push.status_code == 200, push.text
        http.delete(f"/v1/sessions/{session}")
    log = subprocess.run(
        ["git", "--git-dir", str(remote), "log", "-1", "--format=%an <%ae>|%s", "main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert log == "Agent <agent@example.com>|Fix add"
    content = subprocess.run(
        ["git", "--git-dir", str(remote), "show", "main:calc.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "return a + b" in content
