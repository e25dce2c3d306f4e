"""A session id used again after its session closed: the new session, perhaps another tenant's,
sees nothing of the earlier one — no correlation replay, no audit records — with the in-memory
stores and with Valkey."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient

from serve_app.api.app import create_app
from serve_app.config import Settings
from serve_app.wiring import build_executor, build_session_service
from tests.conftest import invoke, principal, valkey_settings_for

SECRET = "tenant-a-build-secret"


@contextmanager
def serving(settings: Settings) -> Iterator[TestClient]:
    service = build_session_service(settings, build_executor(settings))
    with TestClient(create_app(service)) as client:
        yield client


def create(client: TestClient, tenant: str) -> None:
    response = client.post(
        "/v1/sessions", json={"principal": principal(tenant=tenant), "session_id": "build-42"}
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("store", ["memory", "valkey"])
def test_a_reused_session_id_replays_and_audits_nothing_of_the_earlier_session(
    settings: Settings, valkey_address: str, store: str
) -> None:
    chosen = valkey_settings_for(settings, valkey_address) if store == "valkey" else settings
    with serving(chosen) as client:
        create(client, "tenant-a")
        status, _ = invoke(
            client,
            "build-42",
            "fs.write_file",
            {"path": "notes.txt", "content": SECRET},
            approved=True,
        )
        assert status == 200
        status, first = invoke(
            client, "build-42", "fs.read_file", {"path": "notes.txt"}, correlation_id="step-1"
        )
        assert status == 200 and SECRET in str(first)
        assert client.delete("/v1/sessions/build-42").status_code == 200

        create(client, "tenant-b")
        status, second = invoke(
            client, "build-42", "fs.read_file", {"path": "notes.txt"}, correlation_id="step-1"
        )
        assert SECRET not in str(second)
        assert second["invocation"]["id"] != first["invocation"]["id"]  # type: ignore[index]
        # A tool failure (the file is not in this workspace) answers 500 (contract §3).
        assert status == 500 and second["error"]["code"] == "not_found"  # type: ignore[index]

        audit = client.get("/v1/sessions/build-42/audit").json()["audit"]
        assert {record["tenant_id"] for record in audit} == {"tenant-b"}
        assert "step-1" in {record["correlation_id"] for record in audit}
        assert len(audit) == 1

        # Within one session a replay still returns the first invocation.
        status, again = invoke(
            client, "build-42", "fs.read_file", {"path": "notes.txt"}, correlation_id="step-1"
        )
        assert again["invocation"]["id"] == second["invocation"]["id"]  # type: ignore[index]
