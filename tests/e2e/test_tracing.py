"""One trace per request across the three deployments, continuing the caller's traceparent,
exported over OTLP/HTTP to a receiver started by the test."""

from __future__ import annotations

import secrets
import time

import httpx
import pytest
from ray import serve

from serve_app.config import Settings
from tests.e2e.conftest import ServeApp, compose
from tests.support.otlp import OtlpReceiver, ReceivedSpan

pytestmark = pytest.mark.serve


def test_one_trace_spans_ingress_session_manager_and_executor(serve_app: ServeApp) -> None:
    receiver = OtlpReceiver().start()
    settings = Settings(
        workspace_root=serve_app.data / "traced-workspaces",
        artifact_root=serve_app.data / "traced-artifacts",
        otel_enabled=True,
        otel_endpoint=receiver.endpoint,
        otel_insecure=True,
        otel_export_delay_ms=100,
        environment="e2e",
    )
    serve.run(compose(settings), name="traced", route_prefix="/traced")
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    try:
        with httpx.Client(base_url=f"{serve_app.url}/traced", timeout=60) as http:
            session_id = http.post(
                "/v1/sessions", json={"principal": {"tenant_id": "t", "actor_id": "a"}}
            ).json()["session"]["id"]
            response = http.post(
                f"/v1/sessions/{session_id}/tools/fs.list/invoke",
                json={"args": {}, "correlation_id": "trace-me"},
                headers={"traceparent": f"00-{trace_id}-{parent_id}-01", "x-request-id": "req-42"},
            )
        assert response.status_code == 200
        assert response.headers["x-trace-id"] == trace_id
        assert response.headers["x-request-id"] == "req-42"
        invocation_id = response.json()["invocation"]["id"]
        wanted = {"Ingress", "SessionManager", "ToolExecutor"}
        deadline = time.monotonic() + 30
        while True:
            spans = receiver.spans_of(trace_id)
            seen = {span.attributes.get("workspace.deployment") for span in spans}
            if wanted <= seen or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert wanted <= seen, f"spans seen: {[(s.name, s.attributes) for s in spans]}"
        by_id = {span.span_id: span for span in spans}

        def ancestors(span: ReceivedSpan) -> list[str]:
            chain = []
            while span.parent_span_id in by_id:
                chain.append(span.parent_span_id)
                span = by_id[span.parent_span_id]
            chain.append(span.parent_span_id)
            return chain

        by_deployment = {
            span.attributes["workspace.deployment"]: span
            for span in spans
            if "workspace.deployment" in span.attributes
        }
        ingress = by_deployment["Ingress"]
        manager = by_deployment["SessionManager"]
        executor = by_deployment["ToolExecutor"]
        assert ingress.parent_span_id == parent_id, "continues the caller's trace"
        assert ingress.span_id in ancestors(manager)
        assert manager.span_id in ancestors(executor)
        assert all(ancestors(span)[-1] == parent_id for span in spans), "one trace, one root"
        assert manager.name == "fs.list"
        assert manager.attributes["workspace.invocation_id"] == invocation_id
        assert manager.attributes["workspace.invocation_status"] == "succeeded"
        assert manager.attributes["workspace.correlation_id"] == "trace-me"
        assert manager.attributes["workspace.session_id"] == session_id
        assert executor.attributes["workspace.invocation_id"] == invocation_id
        assert ingress.resource["service.name"] == "workspace"
        assert ingress.resource["deployment.environment"] == "e2e"
    finally:
        serve.delete("traced")
        receiver.stop()
