"""The application's metric families also reach a Prometheus that scrapes Ray's per-node
metrics port (prefixed `ray_`, with Ray's deployment and replica labels)."""

from __future__ import annotations

import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import ServeApp

pytestmark = pytest.mark.serve


def _invocations(text: str, tool: str, status: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name == "ray_workspace_invocations_total"
                and labels.get("tool") == tool
                and labels.get("status") == status
                and labels.get("deployment") == "SessionManager"
            ):
                total += sample.value
    return total


def test_ray_metrics_port_exports_the_application_families(
    serve_app: ServeApp, http: httpx.Client
) -> None:
    session_id = http.post(
        "/v1/sessions", json={"principal": {"tenant_id": "m", "actor_id": "a"}}
    ).json()["session"]["id"]
    for _ in range(3):
        assert (
            http.post(
                f"/v1/sessions/{session_id}/tools/fs.stat/invoke", json={"args": {"path": "x"}}
            ).status_code
            == 200
        )
    deadline = time.monotonic() + 60
    text = ""
    while time.monotonic() < deadline:
        text = httpx.get(serve_app.ray_metrics_url, timeout=10).text
        if _invocations(text, "fs.stat", "succeeded") >= 3:
            break
        time.sleep(1)
    assert _invocations(text, "fs.stat", "succeeded") >= 3, "Ray reports on its own interval"
    assert "ray_workspace_invocation_duration_seconds_bucket" in text
    assert "ray_workspace_session_create_duration_seconds_count" in text
