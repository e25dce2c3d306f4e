"""Session ids chosen by clients: two concurrent creates of one id let exactly one win, and a
session that reuses a closed session's id, perhaps another tenant's, sees nothing of the earlier
one (no correlation replay, no audit records); with the in-memory stores and with Valkey."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serve_app.api.app import create_app
from serve_app.config import Settings
from serve_app.domain.errors import ErrorCode, ServiceError
from serve_app.domain.models import Principal, Session
from serve_app.domain.sessions import CreateSession
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


@pytest.mark.parametrize("store", ["memory", "valkey"])
async def test_concurrent_creates_of_one_id_let_one_win_and_leave_nothing_of_the_other(
    settings: Settings, valkey_address: str, store: str, tmp_path: Path
) -> None:
    chosen = valkey_settings_for(settings, valkey_address) if store == "valkey" else settings
    source = tmp_path / "source"
    source.mkdir()
    for n in range(300):  # a copy that takes long enough for the two creates to overlap
        (source / f"f{n}.txt").write_text("x" * 1000)
    service = build_session_service(chosen, build_executor(chosen))
    creates = [
        service.create_session(
            CreateSession(
                principal=Principal(tenant_id=tenant, actor_id="a"),
                session_id="build-7",
                source_repo_path=str(source),
            )
        )
        for tenant in ("tenant-a", "tenant-b")
    ]
    results = await asyncio.gather(*creates, return_exceptions=True)
    won = [r for r in results if isinstance(r, Session)]
    lost = [r for r in results if isinstance(r, ServiceError)]
    assert len(won) == 1 and len(lost) == 1, results
    assert lost[0].code == ErrorCode.ALREADY_EXISTS
    stored = await service.get_session("build-7")
    assert stored.principal.tenant_id == won[0].principal.tenant_id
    loser = {"tenant-a", "tenant-b"} - {won[0].principal.tenant_id}
    assert not (chosen.workspace_root / loser.pop() / "build-7").exists()
    assert Path(stored.workspace_path).is_dir()
    # Once created, the id is taken until the session closes; then it is free again.
    with pytest.raises(ServiceError) as again:
        await service.create_session(
            CreateSession(
                principal=Principal(tenant_id="tenant-c", actor_id="a"), session_id="build-7"
            )
        )
    assert again.value.code == ErrorCode.ALREADY_EXISTS
    await service.close_session("build-7")
    reopened = await service.create_session(
        CreateSession(principal=Principal(tenant_id="tenant-c", actor_id="a"), session_id="build-7")
    )
    assert reopened.principal.tenant_id == "tenant-c"
