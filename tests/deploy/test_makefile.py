"""The Makefile's Kubernetes targets, run by make for real with a stand-in kubectl that records
its calls (tests/deploy/fake_kubectl.py): which objects are applied, deleted and patched, in
which order, and what the recipes wait for."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def yaml_files(folder: str) -> list[str]:
    return sorted(path.relative_to(REPO).as_posix() for path in (REPO / folder).glob("*.yaml"))


DEPLOY_FILES = yaml_files("deploy")
# The alerts (another piece of work's file) go with the monitoring objects.
RULE_FILES = yaml_files("deploy/observability")


@pytest.fixture
def state(tmp_path: Path) -> Path:
    directory = tmp_path / "state"
    directory.mkdir()
    return directory


@pytest.fixture
def kubectl(tmp_path: Path) -> Path:
    path = tmp_path / "bin" / "kubectl"
    path.parent.mkdir()
    source = (Path(__file__).parent / "fake_kubectl.py").read_text()
    path.write_text(f"#!{sys.executable}\n{source}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def make(
    target: str, kubectl: Path, state: Path, *variables: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env["FAKE_KUBECTL_STATE"] = str(state)
    return subprocess.run(
        [
            "make",
            "--no-print-directory",
            target,
            f"KUBECTL={kubectl}",
            f"SMOKE_PYTHON={sys.executable}",
            *variables,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def calls(state: Path) -> list[list[str]]:
    path = state / "calls.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def position(recorded: list[list[str]], *words: str) -> int:
    """Index of the first call holding all `words` in order."""
    for index, call in enumerate(recorded):
        if all(word in call for word in words):
            return index
    raise AssertionError(f"no call with {words}: {recorded}")


def applied(recorded: list[list[str]]) -> list[str]:
    return [call[call.index("-f") + 1] for call in recorded if call[0] == "apply"]


def test_deploy_applies_the_files_in_order_then_waits_for_the_rayservice(
    kubectl: Path, state: Path
) -> None:
    result = make("deploy-workspace", kubectl, state)
    assert result.returncode == 0, result.stderr
    recorded = calls(state)
    assert applied(recorded) == [f for f in DEPLOY_FILES if not f.endswith("-monitoring.yaml")]
    assert (
        "skip deploy/80-monitoring.yaml and deploy/observability/: "
        "the Prometheus Operator CRDs are not installed"
    ) in result.stdout
    secret = position(recorded, "apply", "-f", "deploy/20-secret-workspace-auth.yaml")
    token = position(recorded, "patch", "secret", "workspace-auth")
    valkey_secret = position(recorded, "apply", "-f", "deploy/21-secret-workspace-valkey.yaml")
    password = position(recorded, "patch", "secret", "workspace-valkey")
    valkey = position(recorded, "apply", "-f", "deploy/40-valkey.yaml")
    valkey_ready = position(recorded, "rollout", "status", "statefulset/workspace-valkey")
    rayservice = position(recorded, "apply", "-f", "deploy/60-rayservice.yaml")
    ready = position(recorded, "wait", "--for=condition=Ready", "rayservice/workspace")
    assert secret < token < valkey_secret < password < valkey < valkey_ready < rayservice < ready
    assert ready > max(i for i, call in enumerate(recorded) if call[0] == "apply")
    shared_token = json.loads((state / "secret-patch.json").read_text())["stringData"]
    assert len(shared_token["shared_token"]) >= 48
    assert shared_token["shared_token"] not in result.stdout + result.stderr
    valkey_password = json.loads((state / "valkey-secret-patch.json").read_text())["stringData"]
    assert len(valkey_password["password"]) >= 48
    assert valkey_password["password"] not in result.stdout + result.stderr
    assert valkey_password["password"] != shared_token["shared_token"]


def test_deploy_fills_only_the_secret_that_is_empty(kubectl: Path, state: Path) -> None:
    (state / "token").write_text("dG9rZW4=")
    result = make("deploy-workspace", kubectl, state)
    assert result.returncode == 0, result.stderr
    assert "workspace-auth: shared_token is set" in result.stdout
    assert "workspace-valkey: generated a new password" in result.stdout
    patches = [call[call.index("patch") :] for call in calls(state) if "patch" in call]
    assert [call[1:3] for call in patches] == [["secret", "workspace-valkey"]]


def test_deploy_never_replaces_an_existing_token_or_password(kubectl: Path, state: Path) -> None:
    (state / "token").write_text("dG9rZW4=")
    (state / "valkey-password").write_text("cGFzc3dvcmQ=")
    result = make("deploy-workspace", kubectl, state)
    assert result.returncode == 0, result.stderr
    assert "workspace-auth: shared_token is set" in result.stdout
    assert "workspace-valkey: password is set" in result.stdout
    assert not any("patch" in call for call in calls(state))


def test_deploy_applies_the_monitoring_objects_where_the_operator_is(
    kubectl: Path, state: Path
) -> None:
    (state / "crds").touch()
    result = make("deploy-workspace", kubectl, state)
    assert result.returncode == 0, result.stderr
    assert applied(calls(state)) == [*DEPLOY_FILES, *RULE_FILES]


def test_deploy_stops_at_the_first_failing_apply(kubectl: Path, state: Path) -> None:
    (state / "fail-apply").write_text("40-valkey.yaml")
    result = make("deploy-workspace", kubectl, state)
    assert result.returncode != 0
    assert applied(calls(state))[-1] == "deploy/40-valkey.yaml"
    assert not any("wait" in call for call in calls(state))


def test_undeploy_keeps_the_namespace_the_volumes_and_the_secrets(
    kubectl: Path, state: Path
) -> None:
    result = make("undeploy-workspace", kubectl, state)
    assert result.returncode == 0, result.stderr
    deleted = [call[call.index("-f") + 1] for call in calls(state) if "-f" in call]
    kept = (
        "-namespace.yaml",
        "-storage.yaml",
        "-secret-workspace-auth.yaml",
        "-secret-workspace-valkey.yaml",
    )
    assert deleted == [*RULE_FILES, *(f for f in reversed(DEPLOY_FILES) if not f.endswith(kept))]
    assert not any("pvc" in call for call in calls(state))


def test_undeploy_with_purge_removes_volumes_and_secrets_but_not_the_namespace(
    kubectl: Path, state: Path
) -> None:
    result = make("undeploy-workspace", kubectl, state, "PURGE=1")
    assert result.returncode == 0, result.stderr
    deleted = [call[call.index("-f") + 1] for call in calls(state) if "-f" in call]
    assert deleted == [
        *RULE_FILES,
        *(f for f in reversed(DEPLOY_FILES) if not f.endswith("-namespace.yaml")),
    ]
    assert any(
        call[-4:] == ["pvc", "-l", "app=workspace-valkey", "--ignore-not-found"]
        for call in calls(state)
    )


def test_restart_moves_the_service_to_a_new_cluster_and_waits_for_it(
    kubectl: Path, state: Path
) -> None:
    result = make("restart-workspace", kubectl, state, "POLL_S=0.05")
    assert result.returncode == 0, result.stderr
    assert "serving cluster: workspace-old" in result.stdout
    assert "serving cluster: workspace-new" in result.stdout
    patch = json.loads((state / "restarted").read_text())
    annotations = patch["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["metadata"][
        "annotations"
    ]
    assert set(annotations) == {"workspace.swe-ai-fleet/restarted-at"}
    recorded = calls(state)
    assert (
        position(recorded, "wait", "--for=condition=Ready", "rayservice/workspace")
        == len(recorded) - 1
    )


def test_restart_gives_up_when_no_new_cluster_takes_over(kubectl: Path, state: Path) -> None:
    (state / "stuck").touch()
    result = make("restart-workspace", kubectl, state, "POLL_S=0.05", "RESTART_TIMEOUT_S=1")
    assert result.returncode != 0
    assert "restart: workspace still serves from workspace-old after 1 s" in result.stderr
    assert not any("wait" in call for call in calls(state))
