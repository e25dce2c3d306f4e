"""trusted_headers mode: authentication, ownership on every route, secrets kept secret."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request

from serve_app.api.auth import Authenticator
from serve_app.config import InvalidSettings, Settings
from serve_app.domain.errors import ServiceError
from tests.support.replicas import replica

TOKEN = "tok-" + "x" * 28
AUTH = Authenticator(mode="trusted_headers", token=TOKEN.encode())


def who(tenant: str, actor: str, roles: str = "developer", token: str = TOKEN) -> dict[str, str]:
    return {
        "X-Workspace-Auth-Token": token,
        "X-Workspace-Tenant-Id": tenant,
        "X-Workspace-Actor-Id": actor,
        "X-Workspace-Roles": roles,
    }


OWNER = who("tenant-a", "actor-1")
SAME_TENANT = who("tenant-a", "actor-2")
OTHER_TENANT = who("tenant-b", "actor-1")


@pytest.fixture
def trusted(settings: Settings) -> Iterator[TestClient]:
    with replica(settings, AUTH) as client:
        yield client


def create(client: TestClient, headers: dict[str, str], **body: object) -> dict[str, object]:
    response = client.post("/v1/sessions", json=body, headers=headers)
    assert response.status_code == 201, response.text
    session: dict[str, object] = response.json()["session"]
    return session


def test_health_and_metrics_need_no_credentials(trusted: TestClient) -> None:
    assert trusted.get("/healthz").status_code == 200
    assert trusted.get("/metrics").status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Workspace-Tenant-Id": "tenant-a", "X-Workspace-Actor-Id": "actor-1"},
        who("tenant-a", "actor-1", token=""),
        who("tenant-a", "actor-1", token="wrong"),
        who("tenant-a", "actor-1", token=TOKEN[:-1]),
        who("tenant-a", "actor-1", token=TOKEN + "x"),
        who("tenant-a", "actor-1", token="t" * 10_000),
    ],
)
def test_missing_wrong_empty_and_over_long_tokens_are_401(
    trusted: TestClient, headers: dict[str, str]
) -> None:
    response = trusted.post("/v1/sessions", json={}, headers=headers)
    assert response.status_code == 401
    assert response.json() == {
        "error": {"code": "unauthorized", "message": "invalid authentication token"}
    }
    assert TOKEN not in response.text


@pytest.mark.parametrize(
    "headers",
    [
        who("", "actor-1"),
        who("tenant-a", ""),
        who("tenant-a", "a" * 10_000),
        who("tenant-a", "actor-1", roles="r," * 5_000),
        who("../etc", "actor-1"),
        who("tenant a", "actor-1"),
    ],
)
def test_bad_principal_headers_are_401(trusted: TestClient, headers: dict[str, str]) -> None:
    response = trusted.post("/v1/sessions", json={}, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("value", [b"actor\r\nX-Injected: 1", b"actor\nx", b"act\x00or"])
def test_header_values_with_control_characters_are_refused(value: bytes) -> None:
    """HTTP servers refuse CR/LF in header values before they reach us; this checks our own
    guard with the raw ASGI scope, in case a proxy forwards such bytes."""
    scope = {
        "type": "http",
        "headers": [
            (b"x-workspace-auth-token", TOKEN.encode()),
            (b"x-workspace-tenant-id", b"tenant-a"),
            (b"x-workspace-actor-id", value),
        ],
    }
    with pytest.raises(ServiceError) as raised:
        AUTH.caller(Request(scope))
    assert raised.value.code == "unauthorized"


def test_the_body_principal_is_ignored_and_header_roles_are_captured(trusted: TestClient) -> None:
    forged = {"tenant_id": "victim", "actor_id": "admin", "roles": ["platform_admin"]}
    session = create(
        trusted, who("tenant-a", "actor-1", roles=" developer, ,developer,qa "), principal=forged
    )
    assert session["principal"] == {
        "tenant_id": "tenant-a",
        "actor_id": "actor-1",
        "roles": ["developer", "qa"],
    }
    assert "/tenant-a/" in str(session["workspace_path"])
    # Roles are those captured at creation: a later header cannot escalate them.
    Path(str(session["workspace_path"]), "f").write_text("x")
    response = trusted.post(
        f"/v1/sessions/{session['id']}/tools/fs.delete/invoke",
        json={"args": {"path": "f"}, "approved": True},
        headers=who("tenant-a", "actor-1", roles="platform_admin"),
    )
    assert response.status_code == 403
    assert Path(str(session["workspace_path"]), "f").exists()


def _routes(session_id: str, invocation_id: str) -> list[tuple[str, str, dict[str, object] | None]]:
    return [
        ("GET", f"/v1/sessions/{session_id}", None),
        ("GET", f"/v1/sessions/{session_id}/tools", None),
        (
            "POST",
            f"/v1/sessions/{session_id}/tools/fs.read_file/invoke",
            {"args": {"path": "s.txt"}},
        ),
        ("GET", f"/v1/invocations/{invocation_id}", None),
        ("GET", f"/v1/invocations/{invocation_id}/logs", None),
        ("GET", f"/v1/invocations/{invocation_id}/artifacts", None),
        ("DELETE", f"/v1/sessions/{session_id}", None),
    ]


def test_no_route_gives_another_principal_access(trusted: TestClient) -> None:
    session = create(trusted, OWNER, metadata={"secret_note": "owner-only"})
    write = trusted.post(
        f"/v1/sessions/{session['id']}/tools/fs.write_file/invoke",
        json={"args": {"path": "s.txt", "content": "owner data"}, "approved": True},
        headers=OWNER,
    )
    assert write.status_code == 200
    invocation_id = write.json()["invocation"]["id"]
    for intruder in (SAME_TENANT, OTHER_TENANT):
        for method, path, body in _routes(str(session["id"]), invocation_id):
            response = trusted.request(method, path, json=body, headers=intruder)
            assert response.status_code == 403, (intruder["X-Workspace-Tenant-Id"], method, path)
            assert response.json()["error"] == {
                "code": "policy_denied",
                "message": "session does not belong to authenticated principal",
            }
            for leaked in ("owner data", "owner-only", str(session["workspace_path"])):
                assert leaked not in response.text
    # Nothing the intruders did changed anything: the session lives, no invocation was added.
    for method, path, body in _routes(str(session["id"]), invocation_id):
        if method == "DELETE":
            continue
        assert trusted.request(method, path, json=body, headers=OWNER).status_code == 200, path
    assert Path(str(session["workspace_path"]), "s.txt").read_text() == "owner data"


def test_unknown_ids_are_404_for_everyone(trusted: TestClient) -> None:
    for method, path, body in _routes("session-0000000000000000", "inv-0000000000000000"):
        response = trusted.request(method, path, json=body, headers=OWNER)
        assert response.status_code == 404, path


def test_invocations_stay_owned_after_their_session_is_closed(trusted: TestClient) -> None:
    session = create(trusted, OWNER)
    write = trusted.post(
        f"/v1/sessions/{session['id']}/tools/fs.write_file/invoke",
        json={"args": {"path": "x", "content": "y"}, "approved": True},
        headers=OWNER,
    ).json()["invocation"]
    assert trusted.delete(f"/v1/sessions/{session['id']}", headers=OWNER).json() == {"closed": True}
    assert trusted.get(f"/v1/invocations/{write['id']}", headers=OWNER).status_code == 200
    assert trusted.get(f"/v1/invocations/{write['id']}", headers=OTHER_TENANT).status_code == 403
    assert (
        "owner"
        not in trusted.get(f"/v1/invocations/{write['id']}", headers=OWNER).json()["invocation"]
    )


def test_ownership_holds_across_replicas_sharing_valkey(valkey_settings: Settings) -> None:
    with replica(valkey_settings, AUTH) as a, replica(valkey_settings, AUTH) as b:
        session = create(a, OWNER)
        write = a.post(
            f"/v1/sessions/{session['id']}/tools/fs.write_file/invoke",
            json={"args": {"path": "x", "content": "y"}, "approved": True},
            headers=OWNER,
        ).json()["invocation"]
        assert b.get(f"/v1/invocations/{write['id']}", headers=OTHER_TENANT).status_code == 403
        assert b.get(f"/v1/invocations/{write['id']}", headers=OWNER).status_code == 200
        assert b.get(f"/v1/sessions/{session['id']}", headers=SAME_TENANT).status_code == 403


def test_payload_mode_keeps_the_original_open_behaviour(client: TestClient) -> None:
    response = client.post(
        "/v1/sessions",
        json={"principal": {"tenant_id": "t", "actor_id": "a"}},
        headers=who("other", "someone"),
    )
    assert response.status_code == 201
    assert response.json()["session"]["principal"]["tenant_id"] == "t"


def test_start_up_refuses_incomplete_auth_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORKSPACE_AUTH_SHARED_TOKEN", raising=False)
    with pytest.raises(InvalidSettings, match="requires WORKSPACE_AUTH_SHARED_TOKEN"):
        Settings(auth_mode="trusted_headers")
    with pytest.raises(InvalidSettings, match="WORKSPACE_AUTH_MODE: must be"):
        Settings(auth_mode="mtls")  # type: ignore[arg-type]
    monkeypatch.setenv("WORKSPACE_AUTH_SHARED_TOKEN", TOKEN)
    monkeypatch.setenv("WORKSPACE_AUTH_TENANT_HEADER", "")
    with pytest.raises(InvalidSettings, match="WORKSPACE_AUTH_TENANT_HEADER: must be") as raised:
        Settings(auth_mode="trusted_headers")
    assert TOKEN not in str(raised.value)
    monkeypatch.setenv("WORKSPACE_AUTH_TENANT_HEADER", "X-Tenant")
    assert Settings(auth_mode="trusted_headers").auth_tenant_header == "X-Tenant"


def test_secrets_do_not_travel_with_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKSPACE_AUTH_SHARED_TOKEN", TOKEN)
    monkeypatch.setenv("VALKEY_PASSWORD", "valkey-pass-123")
    settings = Settings(auth_mode="trusted_headers")
    data = pickle.dumps(settings)
    assert TOKEN.encode() not in data and b"valkey-pass-123" not in data
    assert TOKEN not in repr(settings) and TOKEN not in str(settings.summary())
    # The receiving process reads its own environment.
    assert pickle.loads(data).auth_shared_token.get_secret_value() == TOKEN
    monkeypatch.delenv("WORKSPACE_AUTH_SHARED_TOKEN")
    assert pickle.loads(data).auth_shared_token.get_secret_value() == ""


def test_an_authenticator_without_a_token_lets_nobody_in() -> None:
    scope = {
        "type": "http",
        "headers": [(b"x-workspace-tenant-id", b"t"), (b"x-workspace-actor-id", b"a")],
    }
    with pytest.raises(ServiceError):
        Authenticator(mode="trusted_headers", token=b"").caller(Request(scope))


def test_tools_never_see_service_secrets(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = {
        "WORKSPACE_AUTH_SHARED_TOKEN": TOKEN,
        "VALKEY_PASSWORD": "valkey-pass-123",
        "AWS_SECRET_ACCESS_KEY": "aws-secret",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    with replica(settings, AUTH) as client:
        session = create(client, OWNER)
        response = client.post(
            f"/v1/sessions/{session['id']}/tools/test.env/invoke", json={}, headers=OWNER
        )
        assert response.status_code == 200
        environment = response.json()["invocation"]["output"]["environment"]
        assert environment["HOME"].endswith("/home")
        for name, value in secrets.items():
            assert name not in environment
            assert value not in response.text
        logs = client.get(
            f"/v1/invocations/{response.json()['invocation']['id']}/logs", headers=OWNER
        )
        assert TOKEN not in logs.text and "valkey-pass-123" not in logs.text
