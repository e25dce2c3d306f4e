"""Where a session's repository may come from, over HTTP: another tenant's workspace is never a
source, whatever WORKSPACE_SOURCE_REPO_ROOTS says, and only allowed transports clone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serve_app.api.app import create_app
from serve_app.config import Settings
from serve_app.wiring import build_executor, build_session_service
from tests.conftest import invoke, open_session, principal
from tests.support.git_repos import GitDaemon, init_repo

SECRET = "tenant-b-secret\n"


@pytest.fixture
def victim(client: TestClient) -> Path:
    """Tenant B's workspace, a repository with a secret, under the test's WORKSPACE_ROOT (which
    lies inside the configured source roots)."""
    session = open_session(client, principal=principal(tenant="tenant-b"))
    workspace = Path(str(session["workspace_path"]))
    init_repo(workspace, {"secret.txt": SECRET})
    return workspace


def refused(client: TestClient, settings: Settings, **fields: object) -> str:
    """A create that must be refused and leave tenant A nothing on disk; its message."""
    response = client.post("/v1/sessions", json={"principal": principal(), **fields})
    assert response.status_code == 403, response.text
    assert not any((settings.workspace_root / "tenant-a").glob("*"))
    message: str = response.json()["error"]["message"]
    return message


@pytest.mark.parametrize("form", ["path", "file-url"])
def test_another_tenants_workspace_is_never_a_clone_source(
    client: TestClient, settings: Settings, victim: Path, form: str
) -> None:
    url = str(victim) if form == "path" else f"file://{victim}"
    message = refused(client, settings, repo_url=url)
    assert "WORKSPACE_ROOT" in message


@pytest.mark.parametrize("where", ["workspace", "tenant", "workspace-root", "artifacts", "above"])
def test_source_repo_path_never_copies_workspaces_or_artifacts(
    client: TestClient, settings: Settings, victim: Path, where: str
) -> None:
    path = {
        "workspace": victim,
        "tenant": settings.workspace_root / "tenant-b",
        "workspace-root": settings.workspace_root,
        "artifacts": settings.artifact_root,
        "above": settings.workspace_root.parent,
    }[where]
    message = refused(client, settings, source_repo_path=str(path))
    assert "WORKSPACE_ROOT or ARTIFACT_ROOT" in message


def test_git_transport_addresses_are_refused(client: TestClient, settings: Settings) -> None:
    message = refused(client, settings, repo_url="fd::17")
    assert "transport" in message


@pytest.fixture
def https_only(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        workspace_root=tmp_path / "strict-workspaces",
        artifact_root=tmp_path / "strict-artifacts",
        source_repo_roots=[str(tmp_path / "sources")],
    )
    assert settings.git_allowed_schemes == ["https"]  # the default
    service = build_session_service(settings, build_executor(settings))
    with TestClient(create_app(service)) as client:
        yield client


def test_only_allowed_transports_clone(
    https_only: TestClient, tmp_path: Path, git_daemon: GitDaemon
) -> None:
    repository = init_repo(tmp_path / "served")
    for url in (git_daemon.url(repository), "http://127.0.0.1:9/x.git", "ssh://h/x.git"):
        response = https_only.post("/v1/sessions", json={"principal": principal(), "repo_url": url})
        assert response.status_code == 403, response.text
        assert "WORKSPACE_GIT_ALLOWED_SCHEMES" in response.json()["error"]["message"]
    assert not any((tmp_path / "strict-workspaces").rglob("repo"))


def test_a_local_repository_under_the_roots_still_clones(
    client: TestClient, tmp_path: Path
) -> None:
    """As `make run` does for development: a local repository outside the service's own roots."""
    source = init_repo(tmp_path / "projects" / "app", {"main.py": "print('hi')\n"})
    session = open_session(client, repo_url=str(source))
    assert (Path(str(session["workspace_path"])) / "main.py").read_text() == "print('hi')\n"


def test_a_path_remote_to_another_workspace_is_refused(client: TestClient, victim: Path) -> None:
    session = open_session(client)
    init_repo(Path(str(session["workspace_path"])))
    status, body = invoke(
        client, session["id"], "git.fetch", {"remote": str(victim)}, approved=True
    )
    assert status == 500
    assert body["error"]["code"] == "git_repo_error"
    assert "transport 'file' not allowed" in body["error"]["message"]
    assert SECRET.strip() not in str(body)
