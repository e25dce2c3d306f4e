"""One real Ray Serve cluster per test session, serving the application over HTTP on loopback.

Ray is started with a declared (fake) GPU so that the tests can see that CPU-only executor
replicas hide the node's GPUs from their tools.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from ray.serve import Application

from serve_app.config import Settings
from tests.support.network import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ServeApp:
    url: str
    data: Path
    ray_metrics_url: str


@pytest.fixture(scope="session")
def serve_app() -> Iterator[ServeApp]:
    import ray
    from ray import serve

    from serve_app.app import build_app

    # Replicas import the test-only tool family from the repository.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])
    )
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    data = Path(tempfile.mkdtemp(prefix="ws-e2e-"))
    ray.init(
        address="local",
        # Logical CPUs: room for the applications of these tests side by side (Ray does not
        # pin replicas to cores; two real cores run them all).
        num_cpus=4,
        num_gpus=1,
        include_dashboard=False,
        _temp_dir=str(data / "ray"),
        logging_level="WARNING",
        log_to_driver=False,
        _metrics_export_port=(metrics_port := free_port()),
    )
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    settings = Settings(
        workspace_root=data / "workspaces",
        artifact_root=data / "artifacts",
        source_repo_roots=[str(data)],
        extra_tool_families=["tests.support.tools:TOOLS"],
        git_allowed_schemes=["https", "http", "git"],
    )
    serve.run(build_app(settings), name="workspace", route_prefix="/")
    try:
        yield ServeApp(
            url=f"http://127.0.0.1:{port}",
            data=data,
            ray_metrics_url=f"http://127.0.0.1:{metrics_port}/metrics",
        )
    finally:
        ray.shutdown()
        shutil.rmtree(data, ignore_errors=True)


def compose(settings: Settings, manager_replicas: int = 1) -> Application:
    """The application of `build_app`, with a chosen number of SessionManager replicas."""
    from serve_app.app import Ingress, SessionManager, ToolExecutor

    executor = ToolExecutor.bind(settings)
    manager = SessionManager.options(num_replicas=manager_replicas).bind(executor, settings)
    app: Application = Ingress.bind(manager, settings)
    return app


@pytest.fixture(scope="session")
def valkey_serve_settings(serve_app: ServeApp, valkey_address: str) -> Settings:
    from tests.conftest import valkey_settings_for

    base = Settings(
        workspace_root=serve_app.data / "valkey-workspaces",
        artifact_root=serve_app.data / "valkey-artifacts",
        extra_tool_families=["tests.support.tools:TOOLS"],
    )
    return valkey_settings_for(base, valkey_address)


@pytest.fixture(scope="session")
def valkey_app(serve_app: ServeApp, valkey_serve_settings: Settings) -> str:
    """The application with both stores in Valkey and two SessionManager replicas, at /valkey."""
    from ray import serve

    serve.run(compose(valkey_serve_settings, 2), name="valkey", route_prefix="/valkey")
    return f"{serve_app.url}/valkey"


@pytest.fixture
def http(serve_app: ServeApp) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=serve_app.url, timeout=60) as client:
        yield client
