"""Session routes through the app factory: envelopes, validation, workspaces, expiry."""

from __future__ import annotations

import os
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from serve_app.api.app import create_app
from serve_app.config import Settings
from serve_app.wiring import build_executor, build_session_service
from tests.conftest import open_session, principal
from tests.support.git_repos import GitDaemon


def test_create_session_returns_201_with_the_contract_fields(
    client: TestClient, settings: Settings
) -> None:
    response = client.post(
        "/v1/sessions",
        json={"principal": principal(), "metadata": {"team": "x"}, "expires_in_seconds": 120},
    )
    assert response.status_code == 201
    assert response.text.endswith("\n")
    session = response.json()["session"]
    assert re.fullmatch(r"session-[0-9a-f]{16}", session["id"])
    expected = settings.workspace_root / "tenant-a" / session["id"] / "repo"
    assert session["workspace_path"] == str(expected)
    assert expected.is_dir()
    assert session["runtime"] == {"kind": "local", "workdir": str(expected)}
    assert session["allowed_paths"] == ["."]
    assert session["principal"] == principal()
    assert session["metadata"] == {"team": "x"}
    assert "repo_url" not in session
    created = datetime.fromisoformat(session["created_at"])
    expires = datetime.fromisoformat(session["expires_at"])
    assert expires - created == timedelta(seconds=120)


def test_default_ttl_is_one_hour(client: TestClient) -> None:
    session = open_session(client, expires_in_seconds=0)
    created = datetime.fromisoformat(str(session["created_at"]))
    assert datetime.fromisoformat(str(session["expires_at"])) - created == timedelta(hours=1)


def test_get_session_returns_it_with_expires_at(client: TestClient) -> None:
    session = open_session(client)
    response = client.get(f"/v1/sessions/{session['id']}")
    assert response.status_code == 200
    assert response.json()["session"] == session


def test_unknown_session_is_404(client: TestClient) -> None:
    response = client.get("/v1/sessions/session-0000000000000000")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "session not found"}}
    assert client.get("/v1/sessions/nope/tools").status_code == 404


def test_missing_principal_fields_are_400(client: TestClient) -> None:
    for body, message in [
        ({}, "principal.tenant_id is required"),
        ({"principal": {"tenant_id": "t"}}, "principal.actor_id is required"),
        ({"principal": {"tenant_id": " ", "actor_id": "a"}}, "principal.tenant_id is required"),
    ]:
        response = client.post("/v1/sessions", json=body)
        assert response.status_code == 400
        assert response.json()["error"] == {"code": "invalid_argument", "message": message}


def test_unsafe_ids_are_refused_without_touching_disk(
    client: TestClient, settings: Settings
) -> None:
    for body in [
        {"principal": principal(), "session_id": "../escape"},
        {"principal": principal(), "session_id": "a/b"},
        {"principal": principal(), "session_id": ".hidden"},
        {"principal": principal(tenant="../other")},
    ]:
        response = client.post("/v1/sessions", json=body)
        assert response.status_code == 400, body
        assert response.json()["error"]["code"] == "invalid_argument"
    assert not settings.workspace_root.exists() or not any(settings.workspace_root.rglob("*"))


def test_client_session_id_is_used_and_cannot_be_taken_twice(client: TestClient) -> None:
    session = open_session(client, session_id="agent-a.run_1")
    assert session["id"] == "agent-a.run_1"
    response = client.post(
        "/v1/sessions", json={"principal": principal(), "session_id": "agent-a.run_1"}
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "already_exists"


def test_metadata_values_must_be_strings(client: TestClient) -> None:
    response = client.post("/v1/sessions", json={"principal": principal(), "metadata": {"n": 1}})
    assert response.status_code == 400
    assert "metadata.n" in response.json()["error"]["message"]


def test_allowed_paths_are_cleaned_and_may_not_escape(client: TestClient) -> None:
    session = open_session(client, allowed_paths=["sandbox/", "/docs", "./src/../lib"])
    assert session["allowed_paths"] == ["sandbox", "docs", "lib"]
    response = client.post(
        "/v1/sessions", json={"principal": principal(), "allowed_paths": ["../x"]}
    )
    assert response.status_code == 400


def test_ttl_above_the_maximum_is_refused(client: TestClient, settings: Settings) -> None:
    too_long = settings.session_max_ttl_seconds + 1
    response = client.post(
        "/v1/sessions", json={"principal": principal(), "expires_in_seconds": too_long}
    )
    assert response.status_code == 400
    assert "expires_in_seconds" in response.json()["error"]["message"]


def test_source_repo_path_is_copied_without_symlinks(client: TestClient, tmp_path: Path) -> None:
    source = tmp_path / "source"
    (source / "pkg").mkdir(parents=True)
    (source / "pkg" / "main.py").write_text("print('hi')\n")
    (source / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(source / "run.sh", 0o755)
    os.symlink("/etc/passwd", source / "passwd")
    session = open_session(client, source_repo_path=str(source))
    workspace = Path(str(session["workspace_path"]))
    assert (workspace / "pkg" / "main.py").read_text() == "print('hi')\n"
    assert os.stat(workspace / "run.sh").st_mode & 0o777 == 0o755
    assert not (workspace / "passwd").exists()
    assert not (workspace / "passwd").is_symlink()


def test_source_repo_path_outside_the_allowed_roots_is_refused(
    client: TestClient, settings: Settings
) -> None:
    response = client.post(
        "/v1/sessions", json={"principal": principal(), "source_repo_path": "/etc"}
    )
    assert response.status_code == 403
    assert "WORKSPACE_SOURCE_REPO_ROOTS" in response.json()["error"]["message"]
    assert not any((settings.workspace_root / "tenant-a").glob("*"))


def _bare_repository(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@x",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@x",
    }
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    (work / "README.md").write_text("hello\n")
    subprocess.run(["git", "-C", str(work), "add", "."], check=True)
    subprocess.run(["git", "-C", str(work), "commit", "-q", "-m", "init"], check=True, env=env)
    subprocess.run(["git", "-C", str(work), "branch", "feature"], check=True)
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    return bare


def test_repo_url_is_cloned_shallowly_at_the_ref(
    client: TestClient, tmp_path: Path, git_daemon: GitDaemon
) -> None:
    bare = _bare_repository(tmp_path)
    url = git_daemon.url(bare)
    session = open_session(client, repo_url=url, repo_ref="feature")
    workspace = Path(str(session["workspace_path"]))
    assert (workspace / "README.md").read_text() == "hello\n"
    branch = subprocess.run(
        ["git", "-C", str(workspace), "rev-parse", "--abbrev-ref", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert branch == "feature"
    assert session["repo_url"] == url
    assert session["repo_ref"] == "feature"


def test_failed_clone_is_500_and_leaves_no_workspace(
    client: TestClient, settings: Settings, tmp_path: Path, git_daemon: GitDaemon
) -> None:
    response = client.post(
        "/v1/sessions",
        json={
            "principal": principal(),
            "session_id": "clone-fails",
            "repo_url": git_daemon.url(tmp_path / "missing.git"),
        },
    )
    assert response.status_code == 500
    assert response.json()["error"]["message"].startswith("git clone failed")
    assert not (settings.workspace_root / "tenant-a" / "clone-fails").exists()
    # The id is free again: nothing half-created holds it.
    assert (
        client.post(
            "/v1/sessions", json={"principal": principal(), "session_id": "clone-fails"}
        ).status_code
        == 201
    )


def test_option_like_repo_url_is_refused(client: TestClient) -> None:
    response = client.post(
        "/v1/sessions", json={"principal": principal(), "repo_url": "--upload-pack=touch /tmp/x"}
    )
    assert response.status_code == 400


def test_close_removes_the_workspace_and_is_idempotent(client: TestClient) -> None:
    session = open_session(client)
    workspace = Path(str(session["workspace_path"]))
    response = client.delete(f"/v1/sessions/{session['id']}")
    assert response.status_code == 200
    assert response.json() == {"closed": True}
    assert not workspace.parent.exists()
    assert client.get(f"/v1/sessions/{session['id']}").status_code == 404
    assert client.delete(f"/v1/sessions/{session['id']}").json() == {"closed": True}
    assert client.delete("/v1/sessions/never-existed").status_code == 200


class _Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_expired_sessions_are_not_found_and_the_sweeper_removes_them(settings: Settings) -> None:
    clock = _Clock()
    service = build_session_service(settings, build_executor(settings), clock=clock)
    with TestClient(create_app(service)) as client:
        touched = open_session(client, expires_in_seconds=60)
        untouched = open_session(client, expires_in_seconds=60)
        lasting = open_session(client, expires_in_seconds=600)
        clock.now += timedelta(seconds=61)
        assert client.get(f"/v1/sessions/{touched['id']}").status_code == 404
        assert not Path(str(touched["workspace_path"])).exists()
        assert Path(str(untouched["workspace_path"])).exists()
        assert client.portal.call(service.sweep_expired) == 1
        assert not Path(str(untouched["workspace_path"])).exists()
        assert client.get(f"/v1/sessions/{lasting['id']}").status_code == 200
