"""Durable state with a real Valkey: restarts, several session managers, Valkey crashes and
outages. A "replica" here is a SessionService with its own connection pool, as in a replica."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from serve_app.app import build_app
from serve_app.config import Settings
from serve_app.wiring import sweep_once
from tests.conftest import invoke, open_session, valkey_settings_for
from tests.support.replicas import replica
from tests.support.valkey import ValkeyServer


def test_sessions_invocations_and_output_survive_a_restart(valkey_settings: Settings) -> None:
    settings = valkey_settings.model_copy(update={"inline_output_max_bytes": 64})
    with replica(settings) as before:
        session = open_session(before)
        status, written = invoke(
            before,
            session["id"],
            "fs.write_file",
            {"path": "big.txt", "content": "z" * 4096},
            approved=True,
        )
        assert status == 200
        status, read = invoke(before, session["id"], "fs.read_file", {"path": "big.txt"})
        assert status == 200
        ids = [written["invocation"]["id"], read["invocation"]["id"]]
        originals = [before.get(f"/v1/invocations/{i}").json() for i in ids]
        logs_before = [before.get(f"/v1/invocations/{i}/artifacts").json() for i in ids]
    with replica(settings) as after:
        assert after.get(f"/v1/sessions/{session['id']}").json()["session"] == session
        for invocation_id, original, artifacts in zip(ids, originals, logs_before, strict=True):
            again = after.get(f"/v1/invocations/{invocation_id}").json()
            assert again == original
            assert again["invocation"]["status"] == "succeeded"
            assert after.get(f"/v1/invocations/{invocation_id}/artifacts").json() == artifacts
        assert again["invocation"]["output"]["content"] == "z" * 4096
        status, _ = invoke(after, session["id"], "fs.read_file", {"path": "big.txt"})
        assert status == 200, "the workspace outlives the restart with its session"


def test_two_session_managers_share_sessions_invocations_and_replays(
    valkey_settings: Settings,
) -> None:
    with replica(valkey_settings) as a, replica(valkey_settings) as b:
        session = open_session(a)
        assert b.get(f"/v1/sessions/{session['id']}").status_code == 200
        status, first = invoke(
            b,
            session["id"],
            "fs.write_file",
            {"path": "f.txt", "content": "from b"},
            approved=True,
            correlation_id="once",
        )
        assert status == 200
        status, replay = invoke(
            a,
            session["id"],
            "fs.write_file",
            {"path": "f.txt", "content": "from a"},
            approved=True,
            correlation_id="once",
        )
        assert replay["invocation"] == first["invocation"]
        assert Path(str(session["workspace_path"]), "f.txt").read_text() == "from b"
        assert a.get(f"/v1/invocations/{first['invocation']['id']}").status_code == 200
        assert b.delete(f"/v1/sessions/{session['id']}").json() == {"closed": True}
        assert a.get(f"/v1/sessions/{session['id']}").status_code == 404


def test_a_killed_valkey_restarts_from_its_append_only_file(
    settings: Settings, tmp_path: Path
) -> None:
    server = ValkeyServer(tmp_path / "valkey").start()
    config = valkey_settings_for(settings, server.address)
    try:
        with replica(config) as client:
            session = open_session(client)
            ids = []
            for n in range(5):
                _, body = invoke(
                    client,
                    session["id"],
                    "fs.write_file",
                    {"path": f"f{n}.txt", "content": str(n)},
                    approved=True,
                )
                ids.append(body["invocation"]["id"])
            server.kill()
            server.start()
            for invocation_id in ids:
                response = client.get(f"/v1/invocations/{invocation_id}")
                assert response.status_code == 200, "the pool reconnects by itself"
                assert response.json()["invocation"]["status"] == "succeeded"
            assert client.get(f"/v1/sessions/{session['id']}").status_code == 200
    finally:
        server.stop()


def test_an_outage_is_503_without_partial_state_then_recovers(
    settings: Settings, tmp_path: Path
) -> None:
    server = ValkeyServer(tmp_path / "valkey").start()
    config = valkey_settings_for(settings, server.address)
    try:
        with replica(config) as client:
            session = open_session(client)
            server.stop()
            began = time.monotonic()
            response = client.post(
                f"/v1/sessions/{session['id']}/tools/fs.write_file/invoke",
                json={"args": {"path": "x", "content": "x"}, "approved": True},
            )
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "unavailable"
            assert time.monotonic() - began < 15, "answers within a bounded time"
            assert not Path(str(session["workspace_path"]), "x").exists(), "no tool ran"
            response = client.post(
                "/v1/sessions",
                json={
                    "principal": {"tenant_id": "t2", "actor_id": "a"},
                    "session_id": "during-outage",
                },
            )
            assert response.status_code == 503
            assert not (config.workspace_root / "t2" / "during-outage").exists()
            assert client.get("/v1/invocations/inv-0000000000000000").status_code == 503
            assert client.get("/healthz").status_code == 200
            server.start()
            status, body = invoke(
                client,
                session["id"],
                "fs.write_file",
                {"path": "x", "content": "back"},
                approved=True,
            )
            assert status == 200, body
    finally:
        server.stop()


def test_expired_sessions_are_swept_once_across_replicas(valkey_settings: Settings) -> None:
    with replica(valkey_settings) as a, replica(valkey_settings) as b:
        sessions = [open_session(a, expires_in_seconds=1) for _ in range(2)]
        deadline = time.monotonic() + 10
        while any(b.get(f"/v1/sessions/{s['id']}").status_code != 404 for s in sessions):
            assert time.monotonic() < deadline, "Valkey expires session keys at expires_at"
            time.sleep(0.05)
        removed = [
            client.portal.call(
                sweep_once,
                client.app.state.service,  # type: ignore[attr-defined]
                client.app.state.stores.sweeper_lease,
                5.0,
            )  # type: ignore[attr-defined]
            for client in (a, b)
        ]
        assert sorted(removed) == [0, 2], "one replica holds the sweeper lease"
        for session in sessions:
            assert not Path(str(session["workspace_path"])).exists()


def test_build_app_refuses_an_unreachable_valkey_naming_it(settings: Settings) -> None:
    config = valkey_settings_for(settings, "127.0.0.1:1")
    with pytest.raises(RuntimeError, match=r"cannot reach Valkey at 127\.0\.0\.1:1"):
        build_app(config)
