"""The invoke pipeline over HTTP: outcome matrix, records, artifacts, correlation replay."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from pathlib import Path

from fastapi.testclient import TestClient

from serve_app.domain.invoking import InvokeCommand
from serve_app.domain.service import SessionService
from tests.conftest import invoke, open_session, principal


def test_success_envelope_and_record(client: TestClient) -> None:
    session = open_session(client)
    status, body = invoke(
        client, session["id"], "fs.write_file", {"path": "a.txt", "content": "hi"}, approved=True
    )
    assert status == 200
    invocation = body["invocation"]
    assert re.fullmatch(r"inv-[0-9a-f]{16}", invocation["id"])
    assert invocation["status"] == "succeeded"
    assert invocation["session_id"] == session["id"]
    assert invocation["tool_name"] == "fs.write_file"
    assert invocation["trace_name"] == "workspace.tools"
    assert invocation["span_name"] == "fs.write_file"
    assert invocation["exit_code"] == 0
    assert "error" not in invocation and "correlation_id" not in invocation
    assert invocation["duration_ms"] >= 0 and invocation["completed_at"] >= invocation["started_at"]
    assert invocation["output"]["bytes_written"] == 2
    fetched = client.get(f"/v1/invocations/{invocation['id']}")
    assert fetched.status_code == 200
    assert fetched.json()["invocation"] == invocation


def test_output_artifact_matches_the_output(client: TestClient) -> None:
    session = open_session(client)
    Path(str(session["workspace_path"]), "f.txt").write_text("content\n")
    _, body = invoke(client, session["id"], "fs.read_file", {"path": "f.txt"})
    invocation = body["invocation"]
    artifacts = client.get(f"/v1/invocations/{invocation['id']}/artifacts").json()["artifacts"]
    assert [a["name"] for a in artifacts] == ["invocation-output.json"]
    artifact = artifacts[0]
    assert artifact["id"] == invocation["output_ref"]
    assert artifact["content_type"] == "application/json"
    stored = Path(artifact["path"]).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == artifact["sha256"]
    assert artifact["size_bytes"] == len(stored)
    assert json.loads(stored) == invocation["output"]
    assert client.get(f"/v1/invocations/{invocation['id']}/logs").json() == {"logs": None}


def test_failed_tool_keeps_logs_and_exit_code(client: TestClient) -> None:
    session = open_session(client)
    Path(str(session["workspace_path"]), "x.txt").write_text("one\n")
    diff = "--- a/x.txt\n+++ b/x.txt\n@@ -1 +1 @@\n-two\n+three\n"
    status, body = invoke(client, session["id"], "fs.patch", {"unified_diff": diff}, approved=True)
    assert status == 500
    invocation = body["invocation"]
    assert invocation["status"] == "failed"
    assert body["error"]["code"] == "execution_failed"
    assert invocation["error"]["retryable"] is False
    assert invocation["exit_code"] != 0
    logs = client.get(f"/v1/invocations/{invocation['id']}/logs").json()["logs"]
    assert logs and any("patch failed" in line["message"] for line in logs)
    assert {line["channel"] for line in logs} <= {"stdout", "stderr"}
    names = {
        a["name"]
        for a in client.get(f"/v1/invocations/{invocation['id']}/artifacts").json()["artifacts"]
    }
    assert names == {"invocation-output.json", "invocation-logs.jsonl"}
    assert invocation["logs_ref"]
    assert Path(str(session["workspace_path"]), "x.txt").read_text() == "one\n"


def test_handler_errors_are_500_even_for_policy_codes(client: TestClient, tmp_path: Path) -> None:
    session = open_session(client)
    (tmp_path / "secret.txt").write_text("s3cret")
    Path(str(session["workspace_path"]), "link").symlink_to(tmp_path / "secret.txt")
    status, body = invoke(client, session["id"], "fs.read_file", {"path": "link"})
    assert status == 500
    assert body["error"]["code"] == "policy_denied"
    assert body["invocation"]["status"] == "failed"
    assert "s3cret" not in json.dumps(body)
    status, body = invoke(client, session["id"], "fs.read_file", {"path": "missing.txt"})
    assert (status, body["error"]["code"]) == (500, "not_found")


def test_approval_is_required_for_gated_tools(client: TestClient) -> None:
    session = open_session(client)
    status, body = invoke(client, session["id"], "fs.write_file", {"path": "a", "content": "x"})
    assert status == 428
    assert body["error"] == {
        "code": "approval_required",
        "message": "tool requires explicit approval",
    }
    assert body["invocation"]["status"] == "denied"
    assert not Path(str(session["workspace_path"]), "a").exists()


def test_policy_denials_are_403_and_recorded(client: TestClient) -> None:
    session = open_session(client, allowed_paths=["sandbox"])
    status, body = invoke(client, session["id"], "fs.read_file", {"path": "outside.txt"})
    assert status == 403
    assert body["error"] == {"code": "policy_denied", "message": "path outside allowed_paths"}
    stored = client.get(f"/v1/invocations/{body['invocation']['id']}").json()["invocation"]
    assert stored["status"] == "denied"
    status, body = invoke(client, session["id"], "fs.delete", {"path": "sandbox/x"}, approved=True)
    assert status == 403
    assert body["error"]["message"] == "high risk capability requires platform_admin role"


def test_platform_admin_may_delete(client: TestClient) -> None:
    session = open_session(client, principal=principal(roles=["platform_admin"]))
    Path(str(session["workspace_path"]), "old.log").write_text("x")
    status, body = invoke(client, session["id"], "fs.delete", {"path": "old.log"}, approved=True)
    assert status == 200, body
    assert not Path(str(session["workspace_path"]), "old.log").exists()


def test_invalid_args_are_400_naming_the_field(client: TestClient) -> None:
    session = open_session(client)
    status, body = invoke(client, session["id"], "fs.read_file", {"path": "a", "max_bytes": 0})
    assert status == 400
    assert body["error"]["code"] == "invalid_argument"
    assert "max_bytes" in body["error"]["message"]
    assert body["invocation"]["status"] == "failed"
    status, body = invoke(client, session["id"], "fs.read_file", {})
    assert status == 400 and "'path' is a required property" in body["error"]["message"]
    status, body = invoke(client, session["id"], "fs.read_file", ["not", "an", "object"])
    assert status == 400


def test_unknown_session_or_tool_is_404_without_a_record(client: TestClient) -> None:
    session = open_session(client)
    status, body = invoke(client, "session-ffffffffffffffff", "fs.read_file", {"path": "a"})
    assert status == 404 and body == {
        "error": {"code": "not_found", "message": "session not found"}
    }
    status, body = invoke(client, session["id"], "nope.tool", {})
    assert status == 404 and body == {"error": {"code": "not_found", "message": "tool not found"}}


def test_aliases_invoke_the_canonical_tool(client: TestClient) -> None:
    session = open_session(client)
    status, body = invoke(
        client, session["id"], "fs.write", {"path": "n.txt", "content": "alias"}, approved=True
    )
    assert status == 200 and body["invocation"]["tool_name"] == "fs.write_file"
    status, body = invoke(client, session["id"], "fs.read", {"path": "n.txt"})
    assert body["invocation"]["output"]["content"] == "alias"


def test_timeout_is_504_and_retryable(client: TestClient, tmp_path: Path) -> None:
    session = open_session(client)
    status, body = invoke(
        client, session["id"], "test.hang", {"seconds": 30, "pid_file": str(tmp_path / "pid")}
    )
    assert status == 504
    assert body["error"]["code"] == "timeout"
    assert body["invocation"]["status"] == "failed"
    assert body["invocation"]["exit_code"] == 124
    assert body["invocation"]["error"]["retryable"] is True


def test_correlation_replay_returns_the_first_invocation_without_running_again(
    client: TestClient,
) -> None:
    session = open_session(client)
    first = invoke(
        client,
        session["id"],
        "fs.write_file",
        {"path": "c.txt", "content": "first"},
        approved=True,
        correlation_id="run-1",
    )[1]["invocation"]
    assert first["correlation_id"] == "run-1"
    status, body = invoke(
        client,
        session["id"],
        "fs.write_file",
        {"path": "c.txt", "content": "second"},
        approved=True,
        correlation_id="run-1",
    )
    assert status == 200
    assert body["invocation"] == first
    assert Path(str(session["workspace_path"]), "c.txt").read_text() == "first"


def test_correlation_from_header_and_replay_of_denials(client: TestClient) -> None:
    session = open_session(client)
    url = f"/v1/sessions/{session['id']}/tools/fs.write_file/invoke"
    headers = {"X-Correlation-Id": "hdr-1"}
    denied = client.post(url, json={"args": {"path": "d", "content": "x"}}, headers=headers)
    assert denied.status_code == 428
    replay = client.post(
        url, json={"args": {"path": "d", "content": "x"}, "approved": True}, headers=headers
    )
    assert replay.status_code == 200
    assert replay.json()["invocation"]["id"] == denied.json()["invocation"]["id"]
    assert replay.json()["invocation"]["status"] == "denied"


def test_correlation_is_keyed_per_session_and_tool(client: TestClient) -> None:
    a, b = open_session(client), open_session(client)
    ids = set()
    for session in (a, b):
        _, body = invoke(
            client,
            session["id"],
            "fs.write_file",
            {"path": "s.txt", "content": str(session["id"])},
            approved=True,
            correlation_id="shared",
        )
        ids.add(body["invocation"]["id"])
        _, body = invoke(
            client, session["id"], "fs.read_file", {"path": "s.txt"}, correlation_id="shared"
        )
        assert body["invocation"]["output"]["content"] == session["id"]
        ids.add(body["invocation"]["id"])
    assert len(ids) == 4


def test_concurrent_replays_run_the_tool_once(service: SessionService) -> None:
    async def scenario() -> set[str]:
        from serve_app.domain.models import Principal
        from serve_app.domain.sessions import CreateSession

        session = await service.create_session(
            CreateSession(principal=Principal(tenant_id="t", actor_id="a"))
        )
        command = InvokeCommand(args={"seconds": 0.2}, correlation_id="once")
        outcomes = await asyncio.gather(
            *(service.invoke(session.id, "test.sleep", command) for _ in range(5))
        )
        return {outcome.invocation.id for outcome in outcomes}

    assert len(asyncio.run(scenario())) == 1


def test_slow_tools_do_not_block_fast_ones(service: SessionService) -> None:
    async def scenario() -> tuple[int, int]:
        from serve_app.domain.models import Principal
        from serve_app.domain.sessions import CreateSession

        session = await service.create_session(
            CreateSession(principal=Principal(tenant_id="t", actor_id="a"))
        )
        slow = [
            asyncio.create_task(
                service.invoke(session.id, "test.sleep", InvokeCommand(args={"seconds": 2}))
            )
            for _ in range(16)
        ]
        await asyncio.sleep(0)
        fast = await service.invoke(session.id, "fs.list", InvokeCommand(args={}))
        pending = sum(not task.done() for task in slow)
        await asyncio.gather(*slow)
        return pending, len(fast.invocation.output["entries"])

    pending, _ = asyncio.run(scenario())
    assert pending == 16


def test_invocation_read_routes_404_for_unknown_ids(client: TestClient) -> None:
    for suffix in ("", "/logs", "/artifacts"):
        response = client.get(f"/v1/invocations/inv-0000000000000000{suffix}")
        assert response.status_code == 404
        assert response.json() == {
            "error": {"code": "not_found", "message": "invocation not found"}
        }
