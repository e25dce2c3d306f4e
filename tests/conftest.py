"""Shared fixtures: settings rooted in a temp dir, the in-process service, and a session in it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serve_app.api.app import create_app
from serve_app.config import Settings
from serve_app.domain.service import SessionService
from serve_app.wiring import build_executor, build_session_service
from tests.support.git_repos import GitDaemon, GitHttpServer
from tests.support.valkey import ValkeyServer

TEST_GIT_SCHEMES = ["https", "http", "git"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        workspace_root=tmp_path / "workspaces",
        artifact_root=tmp_path / "artifacts",
        source_repo_roots=[str(tmp_path)],
        extra_tool_families=["tests.support.tools:TOOLS"],
        # The suite's remotes are a git daemon and a git HTTP server on loopback.
        git_allowed_schemes=TEST_GIT_SCHEMES,
    )


@pytest.fixture(scope="session")
def valkey_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The suite's Valkey: the one `make test` started, else one started here (by PID)."""
    address = os.environ.get("WORKSPACE_TEST_VALKEY_ADDR")
    if address:
        yield address
        return
    server = ValkeyServer(tmp_path_factory.mktemp("valkey")).start()
    try:
        yield server.address
    finally:
        server.stop()


def valkey_settings_for(base: Settings, address: str, prefix: str | None = None) -> Settings:
    """`base` with both stores in Valkey under a key prefix of their own."""
    prefix = prefix or f"t-{uuid.uuid4().hex[:10]}"
    return base.model_copy(
        update={
            "session_store_backend": "valkey",
            "invocation_store_backend": "valkey",
            "valkey_addr": address,
            "session_store_key_prefix": f"{prefix}:session",
            "invocation_store_key_prefix": f"{prefix}:invocation",
        }
    )


@pytest.fixture
def valkey_settings(settings: Settings, valkey_address: str) -> Settings:
    return valkey_settings_for(settings, valkey_address)


@pytest.fixture
def service(settings: Settings) -> SessionService:
    return build_session_service(settings, build_executor(settings))


@pytest.fixture
def client(service: SessionService) -> Iterator[TestClient]:
    with TestClient(create_app(service)) as test_client:
        yield test_client


def principal(
    tenant: str = "tenant-a", actor: str = "agent-1", roles: list[str] | None = None
) -> dict[str, object]:
    return {
        "tenant_id": tenant,
        "actor_id": actor,
        "roles": roles if roles is not None else ["developer"],
    }


def open_session(client: TestClient, **fields: object) -> dict[str, object]:
    body: dict[str, object] = {"principal": principal()}
    body.update(fields)
    response = client.post("/v1/sessions", json=body)
    assert response.status_code == 201, response.text
    session: dict[str, object] = response.json()["session"]
    return session


def invoke(
    client: TestClient, session_id: object, tool: str, args: object = None, **body: object
) -> tuple[int, dict[str, object]]:
    payload: dict[str, object] = {"args": args}
    payload.update(body)
    response = client.post(f"/v1/sessions/{session_id}/tools/{tool}/invoke", json=payload)
    return response.status_code, response.json()


@pytest.fixture(scope="session")
def git_daemon() -> Iterator[GitDaemon]:
    daemon = GitDaemon()
    yield daemon
    daemon.stop()


@pytest.fixture(scope="session")
def git_http() -> Iterator[GitHttpServer]:
    server = GitHttpServer()
    yield server
    server.stop()


@pytest.fixture
def kube_cluster(tmp_path: Path) -> Iterator[object]:
    """A stand-in Kubernetes API server on loopback (`tests/support/kube`, docs/TESTING.md):
    the official client talks to it over HTTP; pods run as sandboxes under `tmp_path/kube`.
    Yields a `tests.support.kube.Cluster`; stops it and everything its pods run afterwards."""
    from tests.support.kube import running_cluster

    with running_cluster(tmp_path / "kube") as cluster:
        yield cluster
