"""The RayService: valid against KubeRay v1.7's CRD, serving ray_config/cluster.yaml (parsed by
Ray's own schema) on port 50053 in every group, GPU executors on the GPU group, the application's
settings from the environment of every Ray container, the secrets only in the containers of the
groups whose replicas need them (placement computed with the resources Ray's own KubeRay
autoscaler reads from each group), and the worker pods set up for the bubblewrap tool sandbox
with nothing more than it needs."""

from __future__ import annotations

import importlib
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray
import yaml
from ray.autoscaler._private.kuberay.autoscaling_config import (
    _get_ray_resources_from_group_spec,
)
from ray.serve.schema import ServeDeploySchema

from serve_app.config import Settings
from tests.deploy.manifests import (
    NAMESPACE,
    REPO,
    env_of,
    find,
    groups,
    kuberay_schema,
    ray_container,
    rayservice,
)

CLUSTER_CONFIG = REPO / "ray_config" / "cluster.yaml"
SERVE_PORT = 50053
# Each secret, the Secret and key it comes from, and the deployments that read it.
SECRETS = {
    "WORKSPACE_AUTH_SHARED_TOKEN": ("workspace-auth", "shared_token", {"Ingress"}),
    "VALKEY_PASSWORD": ("workspace-valkey", "password", {"SessionManager"}),
}
# Groups that start tool sandboxes: ToolExecutor (every command tool), SessionManager (clones).
SANDBOX_GROUPS = ("cpu", "gpu")


def serve_config() -> ServeDeploySchema:
    return ServeDeploySchema.model_validate(yaml.safe_load(rayservice()["spec"]["serveConfigV2"]))


def deployments() -> dict[str, Any]:
    (application,) = serve_config().applications
    return {deployment.name: deployment for deployment in application.deployments}


def errors(body: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(kuberay_schema("ray.io_rayservices.yaml"))
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]


def test_the_rayservice_validates_against_the_kuberay_crd() -> None:
    assert errors(rayservice()) == []


def test_the_crd_validation_rejects_what_kuberay_would() -> None:
    misspelt = rayservice()
    misspelt["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParms"] = {}
    assert any("rayStartParms" in error for error in errors(misspelt))
    wrong_type = rayservice()
    wrong_type["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["maxReplicas"] = "six"
    assert any("maxReplicas" in error for error in errors(wrong_type))


def test_the_cluster_config_also_validates_as_a_raycluster() -> None:
    validator = jsonschema.Draft7Validator(kuberay_schema("ray.io_rayclusters.yaml"))
    body = {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {"name": "workspace", "namespace": NAMESPACE},
        "spec": rayservice()["spec"]["rayClusterConfig"],
    }
    assert [e.message for e in validator.iter_errors(body)] == []


def test_serve_config_is_ray_config_cluster_yaml_verbatim() -> None:
    assert rayservice()["spec"]["serveConfigV2"] == CLUSTER_CONFIG.read_text()


def test_serve_config_parses_with_rays_schema_and_serves_50053_on_all_interfaces() -> None:
    config = serve_config()
    assert config.http_options.host == "0.0.0.0"
    assert config.http_options.port == SERVE_PORT
    assert config.http_options.request_timeout_s is not None
    assert config.http_options.request_timeout_s > 600  # longer than any tool timeout
    assert config.proxy_location == "EveryNode"


def test_the_import_path_imports_the_application_builder() -> None:
    (application,) = serve_config().applications
    module_name, _, attribute = application.import_path.partition(":")
    builder = getattr(importlib.import_module(module_name), attribute)
    from serve_app.app import build_app

    assert builder is build_app
    assert not application.args  # every setting comes from the containers' environment
    assert application.runtime_env in ({}, None)  # nothing fetched at run time


def test_the_three_deployments_autoscale() -> None:
    found = deployments()
    assert set(found) == {"Ingress", "SessionManager", "ToolExecutor"}
    for name, deployment in found.items():
        assert "num_replicas" not in deployment.model_fields_set, name
        scaling = deployment.autoscaling_config
        assert 1 <= scaling["min_replicas"] <= scaling["max_replicas"], name
        assert deployment.max_ongoing_requests >= 256, name
    assert found["SessionManager"].autoscaling_config["max_replicas"] > 1


def test_every_group_exposes_serve_on_50053() -> None:
    for name, group in groups(rayservice()).items():
        ports = {p["name"]: p["containerPort"] for p in ray_container(group)["ports"]}
        assert ports["serve"] == SERVE_PORT, name
        assert ports["metrics"] == 8080, name


def test_the_service_named_workspace_answers_on_50053() -> None:
    service = rayservice()["spec"]["serveService"]
    assert service["metadata"]["name"] == "workspace"
    assert service["spec"]["ports"] == [
        {"name": "serve", "port": SERVE_PORT, "targetPort": SERVE_PORT, "protocol": "TCP"}
    ]


def test_the_head_takes_no_replicas() -> None:
    head = groups(rayservice())["head"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    limits = ray_container(head)["resources"]["limits"]
    assert "nvidia.com/gpu" not in limits


def gpus(group: dict[str, Any]) -> int:
    resources = ray_container(group)["resources"]
    limit = int(resources.get("limits", {}).get("nvidia.com/gpu", 0))
    assert int(resources.get("requests", {}).get("nvidia.com/gpu", limit)) == limit
    return limit


def test_the_executors_hold_gpus_of_the_gpu_group_only() -> None:
    by_name = groups(rayservice())
    assert gpus(by_name["gpu"]) >= 1
    assert gpus(by_name["cpu"]) == 0 and gpus(by_name["head"]) == 0
    executor = deployments()["ToolExecutor"]
    num_gpus = executor.ray_actor_options.num_gpus
    assert 0 < num_gpus <= gpus(by_name["gpu"])
    # The largest executor fleet fits the largest GPU group.
    wanted = executor.autoscaling_config["max_replicas"] * num_gpus
    assert wanted <= by_name["gpu"]["maxReplicas"] * gpus(by_name["gpu"])
    for name in ("Ingress", "SessionManager"):
        assert deployments()[name].ray_actor_options.num_gpus in (None, 0)


def test_the_gpu_group_lands_on_the_rtx_3090_nodes() -> None:
    spec = groups(rayservice())["gpu"]["template"]["spec"]
    assert spec["nodeSelector"]["nvidia.com/gpu.product"] == "NVIDIA-GeForce-RTX-3090"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec[
        "tolerations"
    ]


def without_secrets(env: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [item for item in env if item["name"] not in SECRETS]


def test_every_ray_container_has_the_same_settings() -> None:
    environments = [ray_container(g)["env"] for g in groups(rayservice()).values()]
    assert all(without_secrets(env) == without_secrets(environments[0]) for env in environments)
    assert not any("valueFrom" in item for item in without_secrets(environments[0]))


def node_resources() -> dict[str, dict[str, int]]:
    """Each group's Ray resources, as the KubeRay autoscaler (and `ray start`) sees them."""
    return {
        name: _get_ray_resources_from_group_spec(group, name == "head")
        for name, group in groups(rayservice()).items()
    }


def hosts(deployment: Any) -> set[str]:
    """The groups on whose pods a replica of `deployment` can be placed."""
    options = deployment.ray_actor_options
    wanted = {"CPU": options.num_cpus or 0, "GPU": options.num_gpus or 0, **options.resources}
    return {
        name
        for name, offered in node_resources().items()
        if all(amount <= offered.get(resource, 0) for resource, amount in wanted.items())
    }


def test_the_secret_groups_are_offered_by_the_cpu_workers_only() -> None:
    resources = node_resources()
    assert resources["cpu"]["workspace_secrets"] >= 1
    assert "workspace_secrets" not in resources["head"]
    assert "workspace_secrets" not in resources["gpu"]


def test_each_deployment_lands_only_where_its_secrets_are() -> None:
    found = deployments()
    assert hosts(found["Ingress"]) == hosts(found["SessionManager"]) == {"cpu"}
    assert hosts(found["ToolExecutor"]) == {"gpu"}
    for name, group in groups(rayservice()).items():
        env = env_of(ray_container(group))
        placed = {deployment for deployment, d in found.items() if name in hosts(d)}
        for variable, (secret, key, readers) in SECRETS.items():
            needed = name == "head" or bool(placed & readers)  # the head builds the application
            assert (variable in env) is needed, (name, variable)
            if needed:
                assert env[variable] == {"secretKeyRef": {"name": secret, "key": key}}
                assert find("Secret", secret)


def test_the_gpu_workers_where_tools_run_hold_no_secret() -> None:
    gpu = ray_container(groups(rayservice())["gpu"])
    assert not any("valueFrom" in item or "envFrom" in item for item in gpu["env"])
    assert "envFrom" not in gpu
    assert hosts(deployments()["ToolExecutor"]) == {"gpu"}


def settings_from(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in list(os.environ):
        if name.startswith(("WORKSPACE_", "VALKEY_", "SESSION_STORE_", "INVOCATION_STORE_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        if isinstance(value, str):
            monkeypatch.setenv(name, value)
    return Settings()


def test_the_environment_configures_the_application_for_the_cluster(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = env_of(ray_container(groups(rayservice())["head"]))
    token = env.pop("WORKSPACE_AUTH_SHARED_TOKEN")
    assert token == {"secretKeyRef": {"name": "workspace-auth", "key": "shared_token"}}
    assert find("Secret", token["secretKeyRef"]["name"])
    password = env.pop("VALKEY_PASSWORD")
    assert password == {"secretKeyRef": {"name": "workspace-valkey", "key": "password"}}
    secrets = {"WORKSPACE_AUTH_SHARED_TOKEN": "from-the-secret", "VALKEY_PASSWORD": "valkey-pw"}
    settings = settings_from({**env, **secrets}, monkeypatch)
    assert settings.auth_mode == "trusted_headers"
    assert settings.valkey_password.get_secret_value() == "valkey-pw"
    assert settings.sandbox == "bubblewrap"
    assert settings.session_store_backend == settings.invocation_store_backend == "valkey"
    host, port = settings.valkey_address
    valkey = find("Service", "workspace-valkey")
    assert host == f"{valkey['metadata']['name']}.{NAMESPACE}.svc.cluster.local"
    assert port == valkey["spec"]["ports"][0]["port"]
    assert str(settings.workspace_root) == "/data/workspaces"
    assert str(settings.artifact_root) == "/data/artifacts"
    assert settings.source_repo_roots == ["/data/source-repos"]


def test_workspaces_and_artifacts_are_on_the_shared_volume_in_every_group() -> None:
    claim = find("PersistentVolumeClaim", "workspace-data")["metadata"]["name"]
    for name, group in groups(rayservice()).items():
        spec = group["template"]["spec"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        container = ray_container(group)
        env = env_of(container)
        shared = [
            m["mountPath"]
            for m in container["volumeMounts"]
            if volumes[m["name"]].get("persistentVolumeClaim", {}).get("claimName") == claim
        ]
        for variable in ("WORKSPACE_ROOT", "ARTIFACT_ROOT"):
            assert any(Path(env[variable]).is_relative_to(mount) for mount in shared), (
                name,
                variable,
            )


def test_the_workers_run_as_workspace_runtime_without_its_token() -> None:
    assert find("ServiceAccount", "workspace-runtime")
    service = rayservice()
    assert service["spec"]["rayClusterConfig"]["enableInTreeAutoscaling"] is True
    for name, group in groups(service).items():
        spec = group["template"]["spec"]
        if name == "head":
            # KubeRay binds its autoscaler's Role to the head's service account: leave it to it.
            assert "serviceAccountName" not in spec
        else:
            assert spec["serviceAccountName"] == "workspace-runtime", name
            assert spec["automountServiceAccountToken"] is False, name
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert ray_container(group)["securityContext"]["allowPrivilegeEscalation"] is False


def test_the_worker_pods_get_exactly_what_the_sandbox_needs() -> None:
    for name in SANDBOX_GROUPS:
        spec = groups(rayservice())[name]["template"]["spec"]
        context = ray_container(groups(rayservice())[name])["securityContext"]
        # bubblewrap: user namespaces and mounts past seccomp and AppArmor, a fresh /proc.
        assert context["seccompProfile"]["type"] in ("Unconfined", "Localhost"), name
        assert context["appArmorProfile"]["type"] in ("Unconfined", "Localhost"), name
        assert context["procMount"] == "Unmasked", name
        assert spec["hostUsers"] is False, name  # Kubernetes allows Unmasked only so
        # and nothing more: not privileged, no capability, no privilege escalation, not root.
        assert context.get("privileged", False) is False, name
        assert context["allowPrivilegeEscalation"] is False, name
        assert context["capabilities"] == {"drop": ["ALL"]}, name
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] != 0, name
        assert "runAsUser" not in context and "runAsNonRoot" not in context, name
        for other in ("hostPID", "hostIPC", "hostNetwork", "shareProcessNamespace"):
            assert not spec.get(other), (name, other)


def test_the_head_starts_no_sandbox_and_keeps_the_runtime_defaults() -> None:
    head = groups(rayservice())["head"]
    spec = head["template"]["spec"]
    context = ray_container(head)["securityContext"]
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for relaxed in ("seccompProfile", "appArmorProfile", "procMount", "privileged"):
        assert relaxed not in context, relaxed
    assert "hostUsers" not in spec
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}


def test_every_ray_pod_carries_the_label_the_policies_select() -> None:
    for name, group in groups(rayservice()).items():
        assert group["template"]["metadata"]["labels"]["app"] == "workspace", name


def test_ray_versions_agree_everywhere() -> None:
    service = rayservice()
    assert service["spec"]["rayClusterConfig"]["rayVersion"] == ray.__version__ == "2.60.0"
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^ARG RAY_IMAGE=rayproject/ray:2\.60\.0-py311$", dockerfile, re.M)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert "ray[serve]==2.60.0" in project["dependencies"]


def test_the_gpu_group_runs_the_gpu_variant_of_the_same_image() -> None:
    images = {name: ray_container(g)["image"] for name, g in groups(rayservice()).items()}
    assert images["head"] == images["cpu"]
    assert images["gpu"] == images["head"] + "-gpu"
