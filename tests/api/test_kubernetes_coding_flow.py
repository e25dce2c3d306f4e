"""The coding flow with WORKSPACE_BACKEND=kubernetes, through the HTTP app: a session made with
`runner_profile=toolchains` clones into its runner pod, and writing, testing, patching and
committing all run in the pod through exec — nothing under the local workspace root.

The pod runs on the stand-in of `tests/support/kube` (docs/TESTING.md): images are not pulled
(the commands use this machine's compiler and git inside the pod's sandbox), and scheduling,
RBAC and kubelet restarts are not modelled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from serve_app.api.app import create_app
from serve_app.config import Settings
from serve_app.wiring import build_executor, build_session_service
from tests.conftest import invoke
from tests.support.git_repos import GitDaemon
from tests.support.projects import c_project, commit_all

NS = "fleet"


def ok(client: TestClient, session_id: str, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    status, body = invoke(client, session_id, tool, args, approved=True)
    assert status == 200, body
    invocation: dict[str, Any] = body["invocation"]  # type: ignore[assignment]
    assert invocation["status"] == "succeeded", invocation
    output: dict[str, Any] = invocation["output"]
    return output


def test_the_coding_flow_runs_entirely_in_the_runner_pod(
    kube_cluster: Any, git_daemon: GitDaemon, tmp_path: Path
) -> None:
    origin = c_project(tmp_path / "origin")
    commit_all(origin)
    settings = Settings(
        workspace_root=tmp_path / "workspaces",
        artifact_root=tmp_path / "artifacts",
        workspace_backend="kubernetes",
        kubeconfig=str(kube_cluster.write_kubeconfig(tmp_path / "kubeconfig")),
        k8s_namespace=NS,
        k8s_runner_image_bundles={"toolchains": "registry.local/toolchains:1"},
        git_allowed_schemes=["https", "http", "git"],
    )
    service = build_session_service(settings, build_executor(settings))
    with TestClient(create_app(service)) as client:
        created = client.post(
            "/v1/sessions",
            json={
                "session_id": "flow-1",
                "principal": {"tenant_id": "tenant-a", "actor_id": "agent-1"},
                "repo_url": git_daemon.url(origin),
                "metadata": {"runner_profile": "toolchains"},
            },
        )
        assert created.status_code == 201, created.text
        session = created.json()["session"]
        assert session["runtime"]["kind"] == "kubernetes"
        pod_root = kube_cluster.pod_root(NS, session["runtime"]["pod_name"])
        assert (pod_root / "repo" / "calc.c").is_file(), "cloned by the init container"

        failing = ok(client, "flow-1", "c.test", {"source": "tests/calc_test.c"})
        assert failing["exit_code"] != 0
        assert [t["name"] for t in failing["failed_tests"]] == ["test_sub"]

        ok(
            client,
            "flow-1",
            "fs.write_file",
            {"path": "NOTES.md", "content": "sub is fixed by the test's expectation\n"},
        )
        diff = (
            "--- a/tests/calc_test.c\n+++ b/tests/calc_test.c\n@@ -12,3 +12,3 @@\n"
            '     CHECK("test_add", add(1, 2) == 3);\n'
            '-    CHECK("test_sub", sub(3, 1) == 5);\n'
            '+    CHECK("test_sub", sub(3, 1) == 2);\n'
            "     return failures ? 1 : 0;\n"
        )
        ok(client, "flow-1", "fs.patch", {"unified_diff": diff})
        passing = ok(client, "flow-1", "c.test", {"source": "tests/calc_test.c"})
        assert passing["exit_code"] == 0 and passing["failed_tests"] == []

        status = ok(client, "flow-1", "git.status", {})
        changes = status["status"].splitlines()
        assert " M tests/calc_test.c" in changes and "?? NOTES.md" in changes
        committed = ok(client, "flow-1", "git.commit", {"message": "fix the test", "all": True})
        assert committed["committed"] is True
        log = ok(client, "flow-1", "git.log", {"max_count": 2})
        assert [entry["subject"] for entry in log["entries"]] == ["fix the test", "initial"]

        assert (pod_root / "repo" / "NOTES.md").is_file()
        assert not (tmp_path / "workspaces" / "tenant-a").exists(), "nothing ran locally"
        assert client.delete("/v1/sessions/flow-1").json() == {"closed": True}
        assert kube_cluster.pods(NS) == []
