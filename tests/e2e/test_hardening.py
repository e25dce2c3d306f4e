"""The hardening attacks over HTTP through Ray Serve, with only `fs.*` and `git.*` tools and
approval: git cannot be pointed outside the workspace, a clone or fetch cannot read another
tenant's workspace, and a reused session id replays nothing of the earlier session. (The path
race runs with two executor processes in `tests/runtime/test_path_races.py`.)"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.serve

SECRET = "the other tenant's secret"


def create(http: httpx.Client, tenant: str, **fields: Any) -> dict[str, Any]:
    response = http.post(
        "/v1/sessions", json={"principal": {"tenant_id": tenant, "actor_id": "agent"}, **fields}
    )
    assert response.status_code == 201, response.text
    session: dict[str, Any] = response.json()["session"]
    return session


def invoke(
    http: httpx.Client, session_id: str, tool: str, args: dict[str, Any], **extra: Any
) -> tuple[int, dict[str, Any]]:
    response = http.post(
        f"/v1/sessions/{session_id}/tools/{tool}/invoke",
        json={"args": args, "approved": True, **extra},
    )
    body: dict[str, Any] = response.json()
    return response.status_code, body


def victim_repository(http: httpx.Client) -> tuple[dict[str, Any], Path]:
    """Another tenant's session whose workspace is a git repository holding a secret."""
    victim = create(http, "tenant-victim")
    workspace = Path(victim["workspace_path"])
    (workspace / "secret.txt").write_text(SECRET)
    for argv in (
        ["git", "init", "-q"],
        ["git", "add", "secret.txt"],
        ["git", "-c", "user.name=v", "-c", "user.email=v@x", "commit", "-qm", "secret"],
    ):
        subprocess.run(argv, cwd=workspace, check=True)
    return victim, workspace


def test_a_git_file_pointing_at_another_repository_is_refused(http: httpx.Client) -> None:
    _, victim_workspace = victim_repository(http)
    attacker = create(http, "tenant-attacker")
    status, body = invoke(
        http,
        attacker["id"],
        "fs.write_file",
        {"path": ".git", "content": f"gitdir: {victim_workspace / '.git'}\n"},
    )
    assert body["error"]["code"] == "policy_denied", body
    # Planted by sandboxed code instead, git still does not follow it.
    Path(attacker["workspace_path"], ".git").write_text(f"gitdir: {victim_workspace / '.git'}\n")
    status, body = invoke(http, attacker["id"], "git.show", {"ref": "HEAD"})
    assert SECRET not in str(body)
    assert status != 200 or body["invocation"]["status"] != "succeeded"


def test_core_worktree_cannot_make_git_write_outside(http: httpx.Client) -> None:
    _, victim_workspace = victim_repository(http)
    attacker = create(http, "tenant-attacker")
    workspace = Path(attacker["workspace_path"])
    subprocess.run(["git", "init", "-q"], cwd=workspace, check=True)
    # As sandboxed code of the attacker's own session could: point core.worktree elsewhere.
    subprocess.run(
        ["git", "config", "core.worktree", str(victim_workspace)], cwd=workspace, check=True
    )
    invoke(http, attacker["id"], "fs.write_file", {"path": "mine.txt", "content": "x"})
    invoke(http, attacker["id"], "git.commit", {"message": "m", "all": True})
    invoke(http, attacker["id"], "git.checkout", {"ref": "HEAD", "force": True})
    assert (victim_workspace / "secret.txt").read_text() == SECRET
    assert not (victim_workspace / "mine.txt").exists()
    _, body = invoke(http, attacker["id"], "git.status", {})
    assert "secret.txt" not in str(body)


def test_no_clone_or_fetch_reads_another_workspace(http: httpx.Client) -> None:
    _, victim_workspace = victim_repository(http)
    for source in (str(victim_workspace), f"file://{victim_workspace}"):
        response = http.post(
            "/v1/sessions",
            json={
                "principal": {"tenant_id": "tenant-attacker", "actor_id": "a"},
                "repo_url": source,
            },
        )
        assert response.status_code in (400, 403), response.text
        assert SECRET not in response.text
    response = http.post(
        "/v1/sessions",
        json={
            "principal": {"tenant_id": "tenant-attacker", "actor_id": "a"},
            "source_repo_path": str(victim_workspace),
        },
    )
    assert response.status_code in (400, 403), response.text

    attacker = create(http, "tenant-attacker")
    subprocess.run(["git", "init", "-q"], cwd=attacker["workspace_path"], check=True)
    _, body = invoke(http, attacker["id"], "git.fetch", {"remote": str(victim_workspace)})
    assert body["invocation"]["status"] != "succeeded", body
    listing = subprocess.run(
        ["git", "log", "--all", "--oneline"],
        cwd=attacker["workspace_path"],
        capture_output=True,
        text=True,
    )
    assert "secret" not in listing.stdout


def test_a_reused_session_id_replays_nothing_of_the_earlier_session(http: httpx.Client) -> None:
    first = create(http, "tenant-a", session_id="e2e-build-42")
    status, _ = invoke(http, first["id"], "fs.write_file", {"path": "notes.txt", "content": SECRET})
    assert status == 200
    status, read = invoke(
        http, first["id"], "fs.read_file", {"path": "notes.txt"}, correlation_id="step-1"
    )
    assert status == 200 and SECRET in str(read)
    assert http.delete(f"/v1/sessions/{first['id']}").status_code == 200

    second = create(http, "tenant-b", session_id="e2e-build-42")
    status, replay = invoke(
        http, second["id"], "fs.read_file", {"path": "notes.txt"}, correlation_id="step-1"
    )
    assert SECRET not in str(replay)
    assert replay["invocation"]["id"] != read["invocation"]["id"]
    audit = http.get(f"/v1/sessions/{second['id']}/audit").json()["audit"]
    assert {record["tenant_id"] for record in audit} == {"tenant-b"}
