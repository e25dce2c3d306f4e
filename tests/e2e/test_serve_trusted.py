"""trusted_headers mode through Ray Serve: the ingress replica reads the token from its own
environment (here given through the deployment's runtime_env), never from its arguments."""

from __future__ import annotations

import httpx
import pytest
from ray import serve

from serve_app.app import Ingress, SessionManager, ToolExecutor
from serve_app.config import Settings
from tests.e2e.conftest import ServeApp

pytestmark = pytest.mark.serve

TOKEN = "e2e-" + "t" * 40


def test_trusted_headers_through_serve(
    serve_app: ServeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKSPACE_AUTH_SHARED_TOKEN", TOKEN)
    settings = Settings(
        auth_mode="trusted_headers",
        workspace_root=serve_app.data / "trusted-workspaces",
        artifact_root=serve_app.data / "trusted-artifacts",
    )
    ingress = Ingress.options(
        ray_actor_options={
            "num_cpus": 0.1,
            "runtime_env": {"env_vars": {"WORKSPACE_AUTH_SHARED_TOKEN": TOKEN}},
        }
    )
    app = ingress.bind(SessionManager.bind(ToolExecutor.bind(settings), settings), settings)
    serve.run(app, name="trusted", route_prefix="/trusted")
    owner = {
        "X-Workspace-Auth-Token": TOKEN,
        "X-Workspace-Tenant-Id": "tenant-a",
        "X-Workspace-Actor-Id": "agent-1",
        "X-Workspace-Roles": "developer",
    }
    try:
        with httpx.Client(base_url=f"{serve_app.url}/trusted", timeout=60) as http:
            assert http.post("/v1/sessions", json={}).status_code == 401
            created = http.post("/v1/sessions", json={}, headers=owner)
            assert created.status_code == 201
            session_id = created.json()["session"]["id"]
            intruder = {**owner, "X-Workspace-Tenant-Id": "tenant-b"}
            assert http.get(f"/v1/sessions/{session_id}", headers=intruder).status_code == 403
            assert http.get(f"/v1/sessions/{session_id}", headers=owner).status_code == 200
    finally:
        serve.delete("trusted")
