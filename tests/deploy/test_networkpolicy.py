"""The NetworkPolicies, evaluated as Kubernetes does (a connection is allowed when any policy
selecting the pod allows it; a pod no policy selects is unrestricted), on the labels the pods
will really carry: the Ray pods' from the RayService's templates, the runner pods' from contract
§7.2."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.deploy.manifests import NAMESPACE, find, groups, of_kind, rayservice, selects

RUNNER = {"app": "workspace-session", "workspace_id": "session-1", "workspace_tenant": "t"}
# The Ray groups whose containers get VALKEY_PASSWORD (tests/deploy/test_rayservice.py checks).
SECRET_GROUPS = ("head", "cpu")
NAMESPACE_LABELS = {"kubernetes.io/metadata.name": NAMESPACE}
KUBE_SYSTEM = {"kubernetes.io/metadata.name": "kube-system"}


@dataclass
class Peer:
    labels: dict[str, str] = field(default_factory=dict)
    namespace: dict[str, str] = field(default_factory=lambda: dict(NAMESPACE_LABELS))
    ip: str | None = None  # set for an address outside the cluster


def ray_pods() -> dict[str, dict[str, str]]:
    """Each group's pod labels: the template's plus those KubeRay adds."""
    found = {}
    for name, group in groups(rayservice()).items():
        node_type = "head" if name == "head" else "worker"
        found[name] = {
            **group["template"]["metadata"]["labels"],
            "ray.io/node-type": node_type,
            "ray.io/group": "headgroup" if name == "head" else name,
            "ray.io/cluster": "workspace-abcde",
        }
    return found


def valkey_pod() -> Peer:
    return Peer(find("StatefulSet", "workspace-valkey")["spec"]["template"]["metadata"]["labels"])


def peer_matches(rule_peers: list[dict[str, Any]] | None, peer: Peer) -> bool:
    if not rule_peers:
        return True
    for entry in rule_peers:
        if "ipBlock" in entry:
            if peer.ip is not None:
                block = entry["ipBlock"]
                address = ipaddress.ip_address(peer.ip)
                inside = address in ipaddress.ip_network(block["cidr"])
                excepted = any(address in ipaddress.ip_network(c) for c in block.get("except", []))
                if inside and not excepted:
                    return True
            continue
        if peer.ip is not None:
            continue
        namespace_ok = (
            selects(entry["namespaceSelector"], peer.namespace)
            if "namespaceSelector" in entry
            else peer.namespace == NAMESPACE_LABELS
        )
        pod_ok = selects(entry.get("podSelector", {}), peer.labels)
        if namespace_ok and pod_ok:
            return True
    return False


def port_matches(ports: list[dict[str, Any]] | None, port: int, protocol: str) -> bool:
    if not ports:
        return True
    return any(
        entry.get("protocol", "TCP") == protocol
        and ("port" not in entry or entry["port"] <= port <= entry.get("endPort", entry["port"]))
        for entry in ports
    )


def policies(direction: str, pod: dict[str, str]) -> list[dict[str, Any]]:
    return [
        policy["spec"]
        for policy in of_kind("NetworkPolicy")
        if direction in policy["spec"]["policyTypes"]
        and selects(policy["spec"]["podSelector"], pod)
    ]


def may_connect(source: dict[str, str], target: Peer, port: int, protocol: str = "TCP") -> bool:
    """Egress of `source` (a pod of this namespace), then ingress of `target` if it is a pod."""
    egress = policies("Egress", source)
    if egress and not any(
        peer_matches(rule.get("to"), target) and port_matches(rule.get("ports"), port, protocol)
        for spec in egress
        for rule in spec.get("egress", [])
    ):
        return False
    if target.ip is not None or target.namespace != NAMESPACE_LABELS:
        return True
    ingress = policies("Ingress", target.labels)
    return not ingress or any(
        peer_matches(rule.get("from"), Peer(source))
        and port_matches(rule.get("ports"), port, protocol)
        for spec in ingress
        for rule in spec.get("ingress", [])
    )


def test_the_egress_policy_covers_ray_pods_and_runner_pods() -> None:
    selector = find("NetworkPolicy", "workspace-egress-restricted")["spec"]["podSelector"]
    for name, labels in ray_pods().items():
        assert selects(selector, labels), name
    assert selects(selector, RUNNER)
    assert not selects(selector, {"app": "vllm-server"})
    assert not selects(selector, valkey_pod().labels)


@pytest.mark.parametrize("group", ["head", "cpu", "gpu"])
def test_ray_pods_reach_what_ray_and_the_application_need(group: str) -> None:
    pod = ray_pods()[group]
    for other in ray_pods().values():
        for port in (6379, 8265, 10001, 50053, 52365, 8080, 23456):  # GCS ... a worker port
            assert may_connect(pod, Peer(other), port), (other, port)
    # Only the pods whose containers hold Valkey's password may open it (not the GPU workers).
    assert may_connect(pod, valkey_pod(), 6379) is (group in SECRET_GROUPS)
    assert may_connect(pod, Peer({"k8s-app": "kube-dns"}, KUBE_SYSTEM), 53, "UDP")
    assert may_connect(pod, Peer(ip="140.82.112.3"), 443)  # git over HTTPS
    assert may_connect(pod, Peer(ip="10.96.0.1"), 6443)  # the API server, for the autoscaler
    assert may_connect(pod, Peer({"app": "nats"}), 4222)
    assert not may_connect(pod, Peer(ip="140.82.112.3"), 22)
    assert not may_connect(pod, Peer({"app": "nats"}), 8222)


def test_runner_pods_reach_neither_ray_nor_the_state_store() -> None:
    for name, labels in ray_pods().items():
        for port in (6379, 8265, 10001, 50053, 23456):
            assert not may_connect(RUNNER, Peer(labels), port), (name, port)
    assert not may_connect(RUNNER, valkey_pod(), 6379)
    assert may_connect(RUNNER, Peer({"app": "nats"}), 4222)
    assert may_connect(RUNNER, Peer({"app": "valkey"}), 6379)  # the fleet's own Valkey
    assert may_connect(RUNNER, Peer({"k8s-app": "kube-dns"}, KUBE_SYSTEM), 53, "TCP")
    assert may_connect(RUNNER, Peer(ip="140.82.112.3"), 443)
    assert not may_connect(RUNNER, Peer(ip="10.96.0.1"), 6443)
    assert not may_connect(RUNNER, Peer(ip="140.82.112.3"), 80)


def test_only_the_ray_pods_holding_its_password_may_open_valkey() -> None:
    for name, labels in ray_pods().items():
        assert may_connect(labels, valkey_pod(), 6379) is (name in SECRET_GROUPS), name
        assert not may_connect(labels, valkey_pod(), 6380), name  # Valkey's port only
    assert not may_connect(RUNNER, valkey_pod(), 6379)
    assert not may_connect({"app": "vllm-server"}, valkey_pod(), 6379)  # unrestricted egress
    # A pod that copies a Ray pod's `app` label but is not in a Ray group of the service.
    assert not may_connect({"app": "workspace"}, valkey_pod(), 6379)
    assert may_connect({"app": "vllm-server"}, Peer(ray_pods()["cpu"]), 50053)


def test_valkey_ingress_names_groups_that_exist() -> None:
    """The policy selects KubeRay's group label: a renamed group would silently lose Valkey."""
    (rule,) = find("NetworkPolicy", "workspace-valkey-ingress")["spec"]["ingress"]
    (peer,) = rule["from"]
    (expression,) = peer["podSelector"]["matchExpressions"]
    assert expression["key"] == "ray.io/group"
    labels = {name: pod["ray.io/group"] for name, pod in ray_pods().items()}
    assert sorted(expression["values"]) == sorted(labels[name] for name in SECRET_GROUPS)
