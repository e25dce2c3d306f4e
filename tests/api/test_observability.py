"""Metrics and audit for the whole application: counted once per terminal invocation across
replicas, readable from any replica, surviving restarts with Valkey; audit redaction."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from serve_app import __version__
from serve_app.config import Settings
from tests.conftest import invoke, open_session
from tests.support.replicas import replica


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def run_known_mix(a: TestClient, b: TestClient) -> list[str]:
    """On a: 2 succeeded, 1 failed, 1 denied (+1 replay); on b: 1 denied, 1 succeeded, 1 invalid."""
    first = open_session(a)
    second = open_session(b, allowed_paths=["sandbox"])
    sid, sid2 = first["id"], second["id"]
    assert invoke(a, sid, "fs.write_file", {"path": "x", "content": "1"}, approved=True)[0] == 200
    assert (
        invoke(
            a,
            sid,
            "fs.write_file",
            {"path": "y", "content": "2"},
            approved=True,
            correlation_id="c",
        )[0]
        == 200
    )
    assert (
        invoke(
            a,
            sid,
            "fs.write_file",
            {"path": "y", "content": "2"},
            approved=True,
            correlation_id="c",
        )[0]
        == 200
    )  # a replay: not counted again
    assert invoke(a, sid, "fs.read_file", {"path": "missing"})[0] == 500
    assert invoke(a, sid, "fs.write_file", {"path": "z", "content": "3"})[0] == 428
    assert invoke(b, sid2, "fs.read_file", {"path": "outside.txt"})[0] == 403
    assert invoke(b, sid2, "fs.stat", {"path": "sandbox/new"})[0] == 200
    assert invoke(b, sid2, "fs.read_file", {"path": 5})[0] == 400
    assert invoke(b, sid2, "no.such_tool", {})[0] == 404  # not an invocation: not counted
    return [str(sid), str(sid2)]


def assert_mix(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> None:
    total = "workspace_invocations_total"
    assert value(samples, total, tool="fs.write_file", status="succeeded") == 2
    assert value(samples, total, tool="fs.write_file", status="denied") == 1
    assert value(samples, total, tool="fs.read_file", status="failed") == 2
    assert value(samples, total, tool="fs.read_file", status="denied") == 1
    assert value(samples, total, tool="fs.stat", status="succeeded") == 1
    denied = "workspace_invocations_denied_total"
    assert value(samples, denied, tool="fs.write_file", reason="approval_required") == 1
    assert value(samples, denied, tool="fs.read_file", reason="path") == 1
    count = "workspace_invocation_duration_seconds_count"
    assert value(samples, count, tool="fs.write_file") == 3
    assert value(samples, count, tool="fs.read_file") == 3
    assert value(samples, count, tool="fs.stat") == 1
    inf = "workspace_invocation_duration_seconds_bucket"
    assert value(samples, inf, tool="fs.read_file", le="+Inf") == 3
    assert value(samples, inf, tool="fs.read_file", le="0.01") <= 3
    assert value(samples, "workspace_sessions_active") == 2
    assert value(samples, "workspace_session_create_duration_seconds_count") == 2
    assert value(samples, "workspace_build_info", version=__version__, sandbox="bubblewrap") == 1


def test_metrics_count_a_known_mix_once_across_two_replicas(valkey_settings: Settings) -> None:
    settings = valkey_settings.model_copy(
        update={"metrics_key_prefix": valkey_settings.session_store_key_prefix + ":metrics"}
    )
    with replica(settings) as a, replica(settings) as b:
        run_known_mix(a, b)
        assert_mix(scrape(a))
        assert scrape(a) == scrape(b), "any replica reports the whole application"
    with replica(settings) as restarted:
        assert_mix(scrape(restarted))


def test_metrics_with_in_memory_stores(client: TestClient) -> None:
    run_known_mix(client, client)
    assert_mix(scrape(client))


def test_audit_trail_redacts_and_survives_a_restart(
    valkey_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    metadata = {
        "api_token": "tok-123",
        "GIT_PASSWORD": "hunter2",
        "connection_profile_endpoints_json": '{"dev.redis": "redis://x"}',
        "repo_mirror": "https://user:pa55@git.example.com/r.git",
        "callback": "https://hooks.example.com/x?token=abc123&team=core",
        "note": "Authorization: Bearer eyJhbGciOi.abc",
        "team": "platform",
    }
    caplog.set_level(logging.INFO, logger="workspace.audit")
    with replica(valkey_settings) as client:
        session = open_session(client, metadata=metadata)
        invoke(
            client,
            session["id"],
            "fs.write_file",
            {"path": "a", "content": "secret-arg"},
            approved=True,
            correlation_id="c-9",
        )
        invoke(client, session["id"], "fs.write_file", {"path": "b", "content": "x"})
    with replica(valkey_settings) as client:
        response = client.get(f"/v1/sessions/{session['id']}/audit")
        assert response.status_code == 200
        records = response.json()["audit"]
    assert [r["status"] for r in records] == ["succeeded", "denied"]
    first = records[0]
    assert first["event"] == "audit.tool_invocation"
    assert first["tool"] == "fs.write_file" and first["correlation_id"] == "c-9"
    assert first["tenant_id"] == "tenant-a" and first["actor_id"] == "agent-1"
    assert records[1]["error_code"] == "approval_required"
    redacted = first["metadata"]
    assert redacted["api_token"] == "[REDACTED]"
    assert redacted["GIT_PASSWORD"] == "[REDACTED]"
    assert redacted["connection_profile_endpoints_json"] == "[REDACTED]"
    assert redacted["repo_mirror"] == "https://[REDACTED]@git.example.com/r.git"
    assert redacted["callback"] == "https://hooks.example.com/x?token=[REDACTED]&team=core"
    assert "eyJhbGciOi" not in redacted["note"]
    assert redacted["team"] == "platform"
    text = response.text + caplog.text
    for secret in ("tok-123", "hunter2", "pa55", "abc123", "secret-arg"):
        assert secret not in text
    logged = [r for r in caplog.records if r.name == "workspace.audit"]
    assert len(logged) == 2 and logged[0].audit["invocation_id"] == first["invocation_id"]  # type: ignore[attr-defined]


def test_audit_needs_the_session(client: TestClient) -> None:
    assert client.get("/v1/sessions/session-0000000000000000/audit").status_code == 404
    session = open_session(client)
    assert client.get(f"/v1/sessions/{session['id']}/audit").json() == {"audit": []}
    assert client.get(f"/v1/sessions/{session['id']}/audit?limit=0").status_code == 400
