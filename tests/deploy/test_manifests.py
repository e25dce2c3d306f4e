"""Every object in deploy/ is a valid Kubernetes 1.34 object (the `kubernetes-validate` schemas,
strict: unknown fields are errors), lives in the fleet's namespace, and the objects fit together:
the Secrets hold no token or password, the workspace volume is shared, Valkey persists and
requires the password of its Secret (the one the Ray containers get), the disruption budget and
the monitors select what they are meant to."""

from __future__ import annotations

import copy
import re

import kubernetes_validate
import pytest

from tests.deploy.manifests import (
    KUBERNETES_VERSION,
    NAMESPACE,
    Manifest,
    find,
    groups,
    manifests,
    ray_container,
    rayservice,
    selects,
)

CORE_API_GROUPS = ("v1", "apps/", "rbac.authorization.k8s.io/", "networking.k8s.io/", "policy/")
CORE = [m for m in manifests() if m.body["apiVersion"].startswith(CORE_API_GROUPS)]


def validate(body: dict[str, object]) -> str:
    return str(kubernetes_validate.validate(body, KUBERNETES_VERSION, strict=True))


def test_the_validator_ships_the_schemas_of_kubernetes_1_34() -> None:
    assert KUBERNETES_VERSION in kubernetes_validate.utils.all_versions()


@pytest.mark.parametrize("manifest", CORE, ids=lambda m: f"{m.file}:{m.kind}/{m.name}")
def test_core_objects_validate_against_kubernetes_1_34(manifest: Manifest) -> None:
    assert validate(manifest.body) == "1.34"


def test_the_validation_rejects_an_unknown_field() -> None:
    statefulset = find("StatefulSet", "workspace-valkey")
    statefulset["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError, match="imagePullPolicyy"):
        validate(statefulset)


@pytest.mark.parametrize("group", ["head", "cpu", "gpu"])
def test_the_rayservice_pod_templates_are_valid_pod_templates(group: str) -> None:
    template = copy.deepcopy(groups(rayservice())[group]["template"])
    body = {
        "apiVersion": "v1",
        "kind": "PodTemplate",
        "metadata": {"name": f"workspace-{group}", "namespace": NAMESPACE},
        "template": template,
    }
    assert validate(body) == "1.34"


def test_the_serve_service_is_a_valid_service() -> None:
    service = copy.deepcopy(rayservice()["spec"]["serveService"])
    body = {"apiVersion": "v1", "kind": "Service", **service}
    body["metadata"]["namespace"] = NAMESPACE
    assert validate(body) == "1.34"


def test_files_are_numbered_in_apply_order() -> None:
    files = sorted({m.file for m in manifests()})
    assert all(re.fullmatch(r"\d\d-[a-z0-9-]+\.yaml", name) for name in files), files
    first = {m.kind: m.file for m in reversed(manifests())}
    assert files[0] == first["Namespace"] == "00-namespace.yaml"
    # Everything the Ray pods need exists before the RayService is applied.
    for kind in ("ServiceAccount", "Secret", "PersistentVolumeClaim", "StatefulSet"):
        assert first[kind] < first["RayService"], kind
    assert first["NetworkPolicy"] < first["RayService"]


def test_every_object_is_in_the_fleet_namespace_and_named_once() -> None:
    for manifest in manifests():
        if manifest.kind != "Namespace":
            assert manifest.body["metadata"].get("namespace") == NAMESPACE, manifest
    keys = [(m.kind, m.name) for m in manifests()]
    assert len(keys) == len(set(keys))
    assert find("Namespace", NAMESPACE)


@pytest.mark.parametrize("name", ["workspace-auth", "workspace-valkey"])
def test_the_secrets_carry_no_value(name: str) -> None:
    secret = find("Secret", name)
    assert "data" not in secret and "stringData" not in secret


def test_valkey_requires_the_password_of_its_secret() -> None:
    (container,) = find("StatefulSet", "workspace-valkey")["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args.count("--requirepass") == 1
    reference = re.fullmatch(r"\$\((\w+)\)", args[args.index("--requirepass") + 1])
    assert reference, "the password must come from the environment, expanded by the kubelet"
    env = {item["name"]: item for item in container["env"]}
    source = env[reference.group(1)]["valueFrom"]["secretKeyRef"]
    assert source == {"name": "workspace-valkey", "key": "password"}
    assert find("Secret", source["name"])
    # The Ray containers that talk to Valkey authenticate with that same key.
    for name, group in groups(rayservice()).items():
        ray_env = {item["name"]: item for item in ray_container(group)["env"]}
        if "VALKEY_PASSWORD" in ray_env:
            assert ray_env["VALKEY_PASSWORD"]["valueFrom"]["secretKeyRef"] == source, name
    assert "--protected-mode" not in args  # moot with a password; never turned off again


def test_valkey_readiness_authenticates_without_the_password_in_arguments() -> None:
    (container,) = find("StatefulSet", "workspace-valkey")["spec"]["template"]["spec"]["containers"]
    probe = " ".join(container["readinessProbe"]["exec"]["command"])
    assert "valkey-cli ping" in probe and "PONG" in probe
    assert " -a " not in probe and "--pass" not in probe and "$VALKEY_PASSWORD" not in probe
    env = {item["name"]: item for item in container["env"]}
    assert env["REDISCLI_AUTH"]["valueFrom"]["secretKeyRef"] == {
        "name": "workspace-valkey",
        "key": "password",
    }


def test_the_workspace_volume_is_shared_by_every_pod() -> None:
    claim = find("PersistentVolumeClaim", "workspace-data")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


def test_valkey_persists_every_write_on_its_own_volume() -> None:
    statefulset = find("StatefulSet", "workspace-valkey")
    spec = statefulset["spec"]
    (container,) = spec["template"]["spec"]["containers"]
    args = container["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--appendfsync") + 1] == "always"
    data_dir = args[args.index("--dir") + 1]
    (claim,) = spec["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == data_dir
    service = find("Service", "workspace-valkey")
    assert spec["serviceName"] == service["metadata"]["name"]
    assert selects(
        {"matchLabels": service["spec"]["selector"]}, spec["template"]["metadata"]["labels"]
    )
    assert [p["port"] for p in service["spec"]["ports"]] == [6379]


def test_the_disruption_budget_covers_the_cpu_workers_only() -> None:
    budget = find("PodDisruptionBudget", "workspace-cpu-workers")
    selector = budget["spec"]["selector"]
    # KubeRay labels each pod with its group (ray.io/group) on top of the template's labels.
    pod_labels = {
        name: {**group["template"]["metadata"]["labels"], "ray.io/group": name}
        for name, group in groups(rayservice()).items()
        if name != "head"
    }
    assert [name for name, labels in pod_labels.items() if selects(selector, labels)] == ["cpu"]
    assert budget["spec"]["minAvailable"] < groups(rayservice())["cpu"]["minReplicas"]


def test_the_monitors_scrape_ray_and_the_application() -> None:
    pod_monitor = find("PodMonitor", "workspace-ray")
    for group in groups(rayservice()).values():
        assert selects(pod_monitor["spec"]["selector"], group["template"]["metadata"]["labels"])
        ports = {p["name"] for p in ray_container(group)["ports"]}
        assert {e["port"] for e in pod_monitor["spec"]["podMetricsEndpoints"]} <= ports
    service_monitor = find("ServiceMonitor", "workspace")
    serve_service = rayservice()["spec"]["serveService"]
    assert selects(service_monitor["spec"]["selector"], serve_service["metadata"]["labels"])
    (endpoint,) = service_monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in serve_service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
