"""The Serve config files parse with Ray's own schema and build the application they name."""

from __future__ import annotations

from pathlib import Path

import yaml
from ray.serve.schema import ServeDeploySchema

from serve_app.app import build_app
from serve_app.config import Settings

CONFIG = Path(__file__).resolve().parents[1] / "ray_config" / "local.yaml"


def _deployments(schema: ServeDeploySchema) -> dict[str, object]:
    (application,) = schema.applications
    return {deployment.name: deployment for deployment in application.deployments}


def test_local_config_serves_on_loopback_50053() -> None:
    schema = ServeDeploySchema.model_validate(yaml.safe_load(CONFIG.read_text()))
    assert schema.http_options.host == "127.0.0.1"
    assert schema.http_options.port == 50053
    assert schema.http_options.request_timeout_s is not None
    assert schema.http_options.request_timeout_s > 600  # longer than any tool timeout


def test_local_config_sizes_the_three_deployments() -> None:
    schema = ServeDeploySchema.model_validate(yaml.safe_load(CONFIG.read_text()))
    deployments = _deployments(schema)
    assert set(deployments) == {"Ingress", "SessionManager", "ToolExecutor"}
    executor = deployments["ToolExecutor"]
    assert executor.ray_actor_options.num_gpus == 0  # type: ignore[attr-defined]
    assert deployments["SessionManager"].num_replicas == 1  # type: ignore[attr-defined]
    total_cpus = sum(d.ray_actor_options.num_cpus for d in deployments.values())  # type: ignore[attr-defined]
    assert total_cpus < 1, "all replicas must fit a 2-core machine beside Ray itself"
    for deployment in deployments.values():
        assert deployment.max_ongoing_requests >= 256  # type: ignore[attr-defined]


def test_local_config_args_build_the_application() -> None:
    schema = ServeDeploySchema.model_validate(yaml.safe_load(CONFIG.read_text()))
    (application,) = schema.applications
    assert application.import_path == "serve_app.app:build_app"
    settings = Settings.model_validate(application.args)
    assert settings.source_repo_roots == ["/"]
    assert build_app(settings) is not None
