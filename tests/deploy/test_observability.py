"""The PrometheusRule and the Grafana dashboard only use series the service really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import invoke, open_session

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "observability"
SERIES = re.compile(r"\b(workspace_[a-z_]+)")


def exported_series(client: TestClient) -> set[str]:
    session = open_session(client)
    invoke(client, session["id"], "fs.list", {})
    invoke(client, session["id"], "fs.write_file", {"path": "x", "content": "y"})  # denied
    names = set()
    for family in text_string_to_metric_families(client.get("/metrics").text):
        names.update(sample.name for sample in family.samples)
    return names


def test_prometheus_rule_has_the_four_alerts_on_exported_series(client: TestClient) -> None:
    rule = yaml.safe_load((DEPLOY / "prometheusrule.yaml").read_text())
    assert rule["kind"] == "PrometheusRule"
    assert rule["metadata"]["namespace"] == "swe-ai-fleet"
    alerts = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    assert set(alerts) == {
        "WorkspaceDown",
        "WorkspaceInvocationFailureRateHigh",
        "WorkspaceInvocationDeniedRateHigh",
        "WorkspaceP95InvocationLatencyHigh",
    }
    assert alerts["WorkspaceDown"]["labels"]["severity"] == "critical"
    exported = exported_series(client)
    for alert in alerts.values():
        for name in SERIES.findall(alert["expr"]):
            assert name in exported, f"{alert['alert']} uses {name}, which is not exported"


def test_grafana_dashboard_panels_query_exported_series(client: TestClient) -> None:
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    titles = [panel["title"] for panel in dashboard["panels"]]
    assert any("status" in t for t in titles) and any("p95" in t for t in titles)
    assert any("reason" in t for t in titles) and any("sessions" in t.lower() for t in titles)
    assert any("GPU" in t for t in titles)
    exported = exported_series(client)
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            for name in SERIES.findall(target["expr"]):
                assert name in exported, f"panel {panel['title']!r} uses unknown {name}"
