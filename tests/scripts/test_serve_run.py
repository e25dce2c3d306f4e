"""scripts/serve_run.py (`make run`'s launcher) run for real: an application that cannot start
makes it exit 1 with the reason, and Ray goes away with it, where `serve run` would wait forever
with exit status 0."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from serve_app.config import variables

pytestmark = pytest.mark.serve

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "serve_run.py"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    config = yaml.safe_load((REPO / "ray_config" / "local.yaml").read_text())
    config["http_options"]["port"] = free_port()
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    environment = {k: v for k, v in os.environ.items() if k not in variables()}
    environment.update(
        WORKSPACE_ROOT=str(tmp_path / "workspaces"),
        ARTIFACT_ROOT=str(tmp_path / "artifacts"),
        RAY_ADDRESS="local",
        RAY_USAGE_STATS_ENABLED="0",
        **env,
    )
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(path), *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=REPO,
        timeout=400,
        check=False,
    )


def test_an_unreachable_valkey_fails_with_the_reason(tmp_path: Path) -> None:
    result = serve_run(
        tmp_path,
        "--timeout",
        "240",
        VALKEY_ADDR="127.0.0.1:1",
        SESSION_STORE_BACKEND="valkey",
        INVOCATION_STORE_BACKEND="valkey",
        VALKEY_TIMEOUT_SECONDS="0.5",
    )
    assert result.returncode == 1, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("serve_run: FAILED: application 'workspace' DEPLOY_FAILED: ")
    assert "cannot reach Valkey at 127.0.0.1:1" in last


def test_an_application_not_running_in_time_fails(tmp_path: Path) -> None:
    result = serve_run(tmp_path, "--timeout", "1")
    assert result.returncode == 1, result.stderr[-3000:]
    assert "serve_run: FAILED: not RUNNING after 1 s" in result.stderr
