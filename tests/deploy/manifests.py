"""Reading deploy/*.yaml for the tests: every object with the file it came from, lookups by kind
and name, the KubeRay CRD schemas from ../shared/kuberay, and label-selector matching."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
KUBERAY = REPO.parent / "shared" / "kuberay"
NAMESPACE = "swe-ai-fleet"
KUBERNETES_VERSION = "1.34.0"


@dataclass(frozen=True)
class Manifest:
    file: str
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])


@cache
def manifests() -> tuple[Manifest, ...]:
    found = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        for body in yaml.safe_load_all(path.read_text()):
            if body is not None:
                found.append(Manifest(path.name, body))
    return tuple(found)


def find(kind: str, name: str) -> dict[str, Any]:
    matches = [m.body for m in manifests() if m.kind == kind and m.name == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return copy.deepcopy(matches[0])


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [copy.deepcopy(m.body) for m in manifests() if m.kind == kind]


def rayservice() -> dict[str, Any]:
    return find("RayService", "workspace")


def groups(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The pod groups of the RayService's cluster by name: `head`, then each worker group."""
    config = service["spec"]["rayClusterConfig"]
    found = {"head": config["headGroupSpec"]}
    for group in config["workerGroupSpecs"]:
        found[group["groupName"]] = group
    return found


def ray_container(group: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = group["template"]["spec"]["containers"][0]
    return container


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


def kuberay_schema(filename: str) -> dict[str, Any]:
    """The v1 openAPIV3Schema of a KubeRay CRD, made strict: an unknown field is an error, as
    with kubectl's default server-side field validation."""
    if not KUBERAY.is_dir():
        pytest.skip(f"{KUBERAY} is absent (a checkout without the shared folder beside it)")
    return _kuberay_schema(filename)


@cache
def _kuberay_schema(filename: str) -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present (large CRDs)
    crd = yaml.load((KUBERAY / filename).read_text(), Loader=loader)
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))


def strict(node: Any) -> Any:
    if isinstance(node, dict):
        closed = (
            node.get("type") == "object"
            and "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        )
        if closed:
            node["additionalProperties"] = False
        for value in node.values():
            strict(value)
    elif isinstance(node, list):
        for value in node:
            strict(value)
    return node


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions; {} selects all)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True
