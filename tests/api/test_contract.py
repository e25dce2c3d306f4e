"""The HTTP contract's generic rules: health, strict bodies, size cap, 404/405, OpenAPI, catalog."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.conftest import open_session, principal

ROUTES = [
    ("POST", "/v1/sessions"),
    ("GET", "/v1/sessions/{s}"),
    ("DELETE", "/v1/sessions/{s}"),
    ("GET", "/v1/sessions/{s}/tools"),
    ("POST", "/v1/sessions/{s}/tools/fs.read_file/invoke"),
    ("GET", "/v1/invocations/{i}"),
    ("GET", "/v1/invocations/{i}/logs"),
    ("GET", "/v1/invocations/{i}/artifacts"),
]


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH"])
def test_healthz_answers_any_method(client: TestClient, method: str) -> None:
    response = client.request(method, "/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["content-type"].startswith("application/json")


def test_metrics_is_prometheus_text(client: TestClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE" in response.text


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"principal": principal(), "surprise": 1}, "surprise"),
        ({"principal": {**principal(), "extra": "x"}}, "principal.extra"),
        ({"principal": principal(), "expires_in_seconds": "3600"}, "expires_in_seconds"),
        ({"principal": principal(), "expires_in_seconds": 1.5}, "expires_in_seconds"),
        ({"principal": principal(), "allowed_paths": "sandbox"}, "allowed_paths"),
        ({"principal": {**principal(), "roles": "developer"}}, "principal.roles"),
    ],
)
def test_create_body_is_strict(client: TestClient, body: dict[str, object], fragment: str) -> None:
    response = client.post("/v1/sessions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_argument"
    assert error["message"].startswith("invalid request body")
    assert fragment in error["message"]


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b"null", b'{"args": {}, "approved": "yes"}'])
def test_invoke_body_problems_are_400(client: TestClient, raw: bytes) -> None:
    session = open_session(client)
    response = client.post(
        f"/v1/sessions/{session['id']}/tools/fs.list/invoke",
        content=raw,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_argument"


def test_empty_object_is_a_valid_invoke_body(client: TestClient) -> None:
    session = open_session(client)
    response = client.post(f"/v1/sessions/{session['id']}/tools/fs.list/invoke", json={})
    assert response.status_code == 200


def test_missing_content_type_is_read_as_json(client: TestClient) -> None:
    session = open_session(client)
    response = client.post(f"/v1/sessions/{session['id']}/tools/fs.list/invoke", content=b"{}")
    assert response.status_code == 200


def test_bodies_over_two_mib_are_refused(client: TestClient) -> None:
    big = b'{"principal": {}, "metadata": {"k": "' + b"x" * (2 * 1024 * 1024) + b'"}}'
    response = client.post(
        "/v1/sessions", content=big, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:
        for _ in range(3):
            yield b"x" * (1024 * 1024)

    response = client.post("/v1/sessions", content=chunks())
    assert response.status_code == 413


@pytest.mark.parametrize(("method", "template"), ROUTES)
def test_wrong_methods_are_405(client: TestClient, method: str, template: str) -> None:
    path = template.format(s="session-x", i="inv-x")
    wrong = "PUT" if method != "PUT" else "PATCH"
    response = client.request(wrong, path)
    assert response.status_code == 405
    assert response.json() == {
        "error": {"code": "method_not_allowed", "message": "method not allowed"}
    }
    # Allow names every method the path takes (RFC 9110 §15.5.6), and not the refused one.
    allowed = {part.strip() for part in response.headers["allow"].split(",")}
    assert {m for m, t in ROUTES if t == template} <= allowed
    assert wrong not in allowed


def test_unknown_routes_are_json_404(client: TestClient) -> None:
    for path in ["/v1/sessions/s/unknown", "/v1/invocations/i/unknown", "/nowhere"]:
        response = client.get(path)
        assert response.status_code == 404
        assert response.json() == {"error": {"code": "not_found", "message": "route not found"}}


def test_empty_ids_are_400(client: TestClient) -> None:
    response = client.delete("/v1/sessions/")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "session_id is required"
    response = client.get("/v1/sessions//tools")
    assert response.json()["error"]["message"] == "session_id is required"
    response = client.get("/v1/invocations/")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "invocation_id is required"


def test_openapi_documents_every_route_and_error(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for method, template in ROUTES:
        path = (
            template.replace("{s}", "{session_id}")
            .replace("{i}", "{invocation_id}")
            .replace("fs.read_file", "{tool_name}")
        )
        operation = paths[path][method.lower()]
        assert "200" in operation["responses"] or "201" in operation["responses"]
        assert any(code.startswith(("4", "5")) for code in operation["responses"]), path
    invoke = paths["/v1/sessions/{session_id}/tools/{tool_name}/invoke"]["post"]
    assert {"400", "403", "404", "428", "500", "504"} <= set(invoke["responses"])
    schemas = spec["components"]["schemas"]
    assert {
        "CreateSessionRequest",
        "InvokeToolRequest",
        "Invocation",
        "Session",
        "Capability",
        "ErrorEnvelope",
    } <= set(schemas)
    assert "/healthz" in paths and "/metrics" in paths


def test_tool_listing_is_sorted_filtered_and_complete(client: TestClient) -> None:
    developer = open_session(client)
    admin = open_session(client, principal=principal(roles=["platform_admin"]))
    tools = client.get(f"/v1/sessions/{developer['id']}/tools").json()["tools"]
    names = [tool["name"] for tool in tools]
    assert names == sorted(names)
    assert "fs.write_file" in names and "fs.patch" in names
    assert "fs.delete" not in names
    admin_names = [
        t["name"] for t in client.get(f"/v1/sessions/{admin['id']}/tools").json()["tools"]
    ]
    assert "fs.delete" in admin_names
    fields = {
        "name",
        "description",
        "input_schema",
        "output_schema",
        "scope",
        "side_effects",
        "risk_level",
        "requires_approval",
        "idempotency",
        "constraints",
        "preconditions",
        "postconditions",
        "cost_hint",
        "policy",
        "observability",
        "examples",
        "aliases",
    }
    for tool in tools:
        assert fields <= set(tool), tool["name"]
        assert tool["input_schema"]["type"] == "object"
        assert tool["observability"] == {"trace_name": "workspace.tools", "span_name": tool["name"]}
        assert tool["constraints"]["timeout_seconds"] > 0
    read = next(tool for tool in tools if tool["name"] == "fs.read_file")
    assert read["aliases"] == ["fs.read"]
    assert read["policy"]["path_fields"] == [{"field": "path", "multi": False}]
    write = next(tool for tool in tools if tool["name"] == "fs.write_file")
    assert write["requires_approval"] is True and write["risk_level"] == "medium"


def test_an_invalid_audit_limit_is_a_documented_400(client: TestClient) -> None:
    session = open_session(client)
    response = client.get(f"/v1/sessions/{session['id']}/audit", params={"limit": 0})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_argument"
    operation = client.get("/openapi.json").json()["paths"]["/v1/sessions/{session_id}/audit"]
    assert "400" in operation["get"]["responses"]
