"""Through Ray Serve with Valkey: two SessionManager replicas agree, and invocations outlive a
restart of the whole Serve application. Also: in-memory stores refuse a second replica."""

from __future__ import annotations

import httpx
import pytest
from ray import serve

from serve_app.config import Settings
from tests.e2e.conftest import ServeApp, compose

pytestmark = pytest.mark.serve

PRINCIPAL = {"tenant_id": "e2e-tenant", "actor_id": "e2e-agent", "roles": ["developer"]}


def test_two_session_manager_replicas_see_the_same_state(valkey_app: str) -> None:
    status = serve.status().applications["valkey"].deployments["SessionManager"]
    assert status.replica_states.get("RUNNING") == 2
    with httpx.Client(base_url=valkey_app, timeout=60) as http:
        session_id = http.post("/v1/sessions", json={"principal": PRINCIPAL}).json()["session"][
            "id"
        ]
        write = http.post(
            f"/v1/sessions/{session_id}/tools/fs.write_file/invoke",
            json={
                "args": {"path": "r.txt", "content": "shared"},
                "approved": True,
                "correlation_id": "c-1",
            },
        ).json()["invocation"]
        # Requests land on either replica; every one must see the session and the replay.
        for _ in range(30):
            assert http.get(f"/v1/sessions/{session_id}").status_code == 200
            replay = http.post(
                f"/v1/sessions/{session_id}/tools/fs.write_file/invoke",
                json={
                    "args": {"path": "r.txt", "content": "other"},
                    "approved": True,
                    "correlation_id": "c-1",
                },
            )
            assert replay.json()["invocation"]["id"] == write["id"]


def test_invocations_survive_a_restart_of_the_serve_application(
    valkey_app: str, valkey_serve_settings: Settings
) -> None:
    with httpx.Client(base_url=valkey_app, timeout=60) as http:
        session_id = http.post("/v1/sessions", json={"principal": PRINCIPAL}).json()["session"][
            "id"
        ]
        ids = []
        for n in range(2):
            response = http.post(
                f"/v1/sessions/{session_id}/tools/fs.write_file/invoke",
                json={"args": {"path": f"p{n}.txt", "content": f"v{n}"}, "approved": True},
            )
            ids.append(response.json()["invocation"]["id"])
    serve.delete("valkey")
    serve.run(compose(valkey_serve_settings, 2), name="valkey", route_prefix="/valkey")
    with httpx.Client(base_url=valkey_app, timeout=60) as http:
        for n, invocation_id in enumerate(ids):
            invocation = http.get(f"/v1/invocations/{invocation_id}").json()["invocation"]
            assert invocation["status"] == "succeeded"
            assert invocation["output"]["bytes_written"] == 2
            assert invocation["output"]["path"] == f"p{n}.txt"
        read = http.post(
            f"/v1/sessions/{session_id}/tools/fs.read_file/invoke",
            json={"args": {"path": "p1.txt"}},
        )
        assert read.json()["invocation"]["output"]["content"] == "v1"


def test_in_memory_stores_refuse_a_second_replica(serve_app: ServeApp) -> None:
    settings = Settings(
        workspace_root=serve_app.data / "refused-workspaces",
        artifact_root=serve_app.data / "refused-artifacts",
    )
    try:
        with pytest.raises(RuntimeError, match="Deploying application refused failed"):
            serve.run(compose(settings, 2), name="refused", route_prefix="/refused")
        deployment = serve.status().applications["refused"].deployments["SessionManager"]
        assert "must run exactly one replica" in deployment.message
        assert "SESSION_STORE_BACKEND=valkey" in deployment.message
    finally:
        serve.delete("refused")
