"""End-to-end over HTTP through Ray Serve: the runbook smoke flow, two-agent isolation and the
policy case of the contract's e2e scenario (§12 steps 1-3)."""

from __future__ import annotations

import httpx
import pytest
from ray import serve

from tests.e2e.conftest import ServeApp

pytestmark = pytest.mark.serve

RUN_ID = "e2e-run-1"


def create(http: httpx.Client, **fields: object) -> str:
    body: dict[str, object] = {
        "principal": {
            "tenant_id": "e2e-tenant",
            "actor_id": "e2e-workspace",
            "roles": ["developer"],
        },
        "expires_in_seconds": 3600,
    }
    body.update(fields)
    response = http.post("/v1/sessions", json=body)
    assert response.status_code == 201, response.text
    session_id: str = response.json()["session"]["id"]
    return session_id


def call(
    http: httpx.Client, session_id: str, tool: str, args: object, **extra: object
) -> httpx.Response:
    body: dict[str, object] = {"args": args, "correlation_id": RUN_ID}
    body.update(extra)
    return http.post(f"/v1/sessions/{session_id}/tools/{tool}/invoke", json=body)


def test_runbook_smoke_flow(http: httpx.Client) -> None:
    health = http.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    session_id = create(http)
    assert http.get(f"/v1/sessions/{session_id}").json()["session"]["expires_at"]
    tools = {tool["name"] for tool in http.get(f"/v1/sessions/{session_id}/tools").json()["tools"]}
    assert {"fs.read_file", "fs.write_file", "fs.search", "fs.list"} <= tools
    write = call(
        http, session_id, "fs.write", {"path": "smoke/hello.txt", "content": "hello"}, approved=True
    )
    assert write.status_code == 200, write.text
    assert write.json()["invocation"]["status"] == "succeeded"
    read = call(http, session_id, "fs.read", {"path": "smoke/hello.txt"})
    assert read.status_code == 200
    assert read.json()["invocation"]["output"]["content"] == "hello"
    invocation_id = read.json()["invocation"]["id"]
    assert (
        http.get(f"/v1/invocations/{invocation_id}").json()["invocation"]["status"] == "succeeded"
    )
    artifacts = http.get(f"/v1/invocations/{invocation_id}/artifacts").json()["artifacts"]
    assert [a["name"] for a in artifacts] == ["invocation-output.json"]
    assert http.delete(f"/v1/sessions/{session_id}").json() == {"closed": True}
    assert http.get(f"/v1/sessions/{session_id}/tools").status_code == 404


def test_two_agents_are_isolated(http: httpx.Client) -> None:
    contents = {}
    for agent in ("agent-a", "agent-b"):
        session_id = create(http, metadata={"agent": agent})
        response = call(
            http,
            session_id,
            "fs.write_file",
            {"path": "isolation/state.txt", "content": f"state of {agent}", "create_parents": True},
            approved=True,
        )
        assert response.status_code == 200, response.text
        contents[agent] = session_id
    for agent, session_id in contents.items():
        read = call(http, session_id, "fs.read_file", {"path": "isolation/state.txt"})
        assert read.json()["invocation"]["output"]["content"] == f"state of {agent}"


def test_policy_case(http: httpx.Client) -> None:
    session_id = create(http, allowed_paths=["sandbox"])
    write = http.post(
        f"/v1/sessions/{session_id}/tools/fs.write_file/invoke",
        json={"args": {"path": "sandbox/note.txt", "content": "x"}},
    )
    assert write.status_code == 428
    assert write.json()["error"]["code"] == "approval_required"
    assert write.json()["invocation"]["status"] == "denied"
    read = http.post(
        f"/v1/sessions/{session_id}/tools/fs.read_file/invoke",
        json={"args": {"path": "outside.txt"}},
    )
    assert read.status_code == 403
    assert read.json()["error"]["code"] == "policy_denied"


def test_errors_cross_the_deployments_intact(http: httpx.Client) -> None:
    assert http.get("/v1/sessions/session-0000000000000000").json() == {
        "error": {"code": "not_found", "message": "session not found"}
    }
    session_id = create(http)
    bad = call(http, session_id, "fs.read_file", {"path": 7}, correlation_id=None)
    assert bad.status_code == 400 and "path" in bad.json()["error"]["message"]
    hang = call(http, session_id, "test.hang", {"seconds": 30}, correlation_id=None)
    assert hang.status_code == 504
    assert hang.json()["invocation"]["exit_code"] == 124


def test_cpu_only_executor_hides_the_node_gpu(serve_app: ServeApp) -> None:
    assert serve_app.url
    handle = serve.get_deployment_handle("ToolExecutor", "workspace")
    assert handle.visible_devices.remote().result() == ""
