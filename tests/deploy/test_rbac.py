"""Service accounts, Roles and bindings as contract §11 lists them."""

from __future__ import annotations

from typing import Any

from tests.deploy.manifests import NAMESPACE, find, of_kind

RUNTIME = {
    ("", "pods"): {"create", "get", "list", "watch", "delete"},
    ("", "pods/log"): {"get"},
    ("", "pods/exec"): {"create"},
    ("", "services"): {"get", "list", "watch"},
    ("", "configmaps"): {"get", "list", "watch"},
    ("apps", "deployments"): {"get", "list", "watch"},
}
DELIVERY = {
    ("", "services"): {"get", "list", "watch", "create", "update", "patch"},
    ("", "configmaps"): {"get", "list", "watch", "create", "update", "patch"},
    ("apps", "deployments"): {"get", "list", "watch", "create", "update", "patch"},
    ("", "pods"): {"get", "list", "watch"},
}
MUTATING = {"create", "update", "patch", "delete"}


def grants(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert "resourceNames" not in rule and "*" not in rule["verbs"], rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    return granted


def bindings_of(account: str) -> set[str]:
    return {
        binding["roleRef"]["name"]
        for binding in of_kind("RoleBinding")
        if {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
        in binding["subjects"]
    }


def test_runtime_role_verbs_match_the_contract() -> None:
    assert grants(find("Role", "workspace-runtime")) == RUNTIME


def test_delivery_role_verbs_match_the_contract() -> None:
    assert grants(find("Role", "workspace-delivery")) == DELIVERY


def test_each_account_is_bound_as_in_the_original() -> None:
    assert find("ServiceAccount", "workspace-runtime")
    assert find("ServiceAccount", "workspace-delivery")
    assert bindings_of("workspace-runtime") == {"workspace-runtime"}
    # The delivery account keeps the runtime permissions (sandbox/dev only, as the original).
    assert bindings_of("workspace-delivery") == {"workspace-delivery", "workspace-runtime"}
    assert not of_kind("ClusterRole") and not of_kind("ClusterRoleBinding")


def test_the_runtime_account_cannot_mutate_delivery_resources() -> None:
    runtime = grants(find("Role", "workspace-runtime"))
    for resource in (("", "services"), ("", "configmaps"), ("apps", "deployments")):
        assert not runtime[resource] & MUTATING, resource
    delivery = grants(find("Role", "workspace-delivery"))
    assert {"create", "update"} <= delivery[("apps", "deployments")]
