"""The static policy engine: scope/role, risk, approval, path fields, arg rules, allowlists."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from serve_app.domain.capability import (
    ArgField,
    Capability,
    Idempotency,
    NamedField,
    PathField,
    PolicyMetadata,
    RiskLevel,
    Scope,
    SideEffects,
)
from serve_app.domain.errors import ErrorCode
from serve_app.domain.models import Principal, Runtime, Session, utcnow
from serve_app.domain.policy import evaluate, registry_of
from serve_app.tools import fs
from serve_app.tools.base import define


def make_session(
    roles: list[str] | None = None,
    allowed_paths: list[str] | None = None,
    metadata: dict[str, str] | None = None,
) -> Session:
    now = utcnow()
    return Session(
        id="sess-1",
        workspace_path="/tmp/nonexistent-workspace/repo",
        runtime=Runtime(kind="local"),
        allowed_paths=allowed_paths if allowed_paths is not None else ["."],
        principal=Principal(tenant_id="t", actor_id="a", roles=roles or []),
        metadata=metadata,
        created_at=now,
        expires_at=now + timedelta(hours=1),
    )


def make_capability(
    *,
    scope: Scope = Scope.WORKSPACE,
    risk: RiskLevel = RiskLevel.LOW,
    approval: bool = False,
    path_fields: list[PathField] | None = None,
    arg_fields: list[ArgField] | None = None,
) -> Capability:
    return define(
        name=f"test.{scope}.{risk}",
        description="policy test capability",
        scope=scope,
        risk=risk,
        approval=approval,
        side_effects=SideEffects.NONE,
        idempotency=Idempotency.GUARANTEED,
        timeout=10,
        output_kb=64,
        properties={},
        outputs={},
        path_fields=path_fields or [],
        arg_fields=arg_fields or [],
    )


def with_policy(**fields: list[NamedField]) -> Capability:
    return fs.read_file.capability.model_copy(update={"policy": PolicyMetadata(**fields)})


def assert_denied(decision: Any, reason: str, code: ErrorCode = ErrorCode.POLICY_DENIED) -> None:
    assert not decision.allowed
    assert decision.code is code
    assert decision.reason == reason


# scope and roles --------------------------------------------------------------------------------


@pytest.mark.parametrize("roles", [[], ["developer"], ["viewer", "anything"]])
def test_workspace_and_repo_scope_allowed_for_any_role(roles: list[str]) -> None:
    session = make_session(roles=roles)
    assert evaluate(fs.read_file.capability, session, {"path": "a.txt"}, approved=False).allowed
    assert evaluate(make_capability(scope=Scope.REPO), session, None, approved=False).allowed


@pytest.mark.parametrize("scope", [Scope.CLUSTER, Scope.EXTERNAL])
def test_privileged_scope_denied_without_role(scope: Scope) -> None:
    decision = evaluate(make_capability(scope=scope), make_session(["developer"]), None, False)
    assert_denied(decision, "principal roles cannot access tool scope")


@pytest.mark.parametrize("role", ["devops", "platform_admin", " DevOps ", "PLATFORM_ADMIN\t"])
@pytest.mark.parametrize("scope", [Scope.CLUSTER, Scope.EXTERNAL])
def test_privileged_scope_allowed_for_devops_or_admin(scope: Scope, role: str) -> None:
    decision = evaluate(make_capability(scope=scope), make_session([role]), None, False)
    assert decision.allowed
    assert decision.code is None


def test_privileged_role_substring_does_not_count() -> None:
    decision = evaluate(
        make_capability(scope=Scope.CLUSTER), make_session(["devops2"]), None, False
    )
    assert not decision.allowed


# risk and approval ------------------------------------------------------------------------------


def test_high_risk_requires_platform_admin() -> None:
    for roles in ([], ["developer"], ["devops"]):
        decision = evaluate(fs.delete.capability, make_session(roles), {"path": "x"}, approved=True)
        assert_denied(decision, "high risk capability requires platform_admin role")
    admin = evaluate(
        fs.delete.capability, make_session([" Platform_Admin "]), {"path": "x"}, approved=True
    )
    assert admin.allowed


def test_high_risk_is_checked_before_approval() -> None:
    decision = evaluate(
        fs.delete.capability, make_session(["developer"]), {"path": "x"}, approved=False
    )
    assert decision.code is ErrorCode.POLICY_DENIED


def test_approval_required_when_not_approved() -> None:
    decision = evaluate(
        fs.write_file.capability, make_session(), {"path": "a", "content": "b"}, False
    )
    assert_denied(decision, "tool requires explicit approval", ErrorCode.APPROVAL_REQUIRED)
    decision = evaluate(
        fs.delete.capability, make_session(["platform_admin"]), {"path": "x"}, False
    )
    assert decision.code is ErrorCode.APPROVAL_REQUIRED


def test_approved_invocation_passes() -> None:
    decision = evaluate(
        fs.write_file.capability, make_session(), {"path": "a", "content": "b"}, True
    )
    assert decision.allowed


def test_listing_style_evaluation_passes_for_approval_tools() -> None:
    session = make_session(allowed_paths=["sandbox"])
    for capability in (fs.write_file.capability, fs.patch.capability, fs.read_file.capability):
        assert evaluate(capability, session, {}, approved=True).allowed


# args payload and path fields -------------------------------------------------------------------


@pytest.mark.parametrize("args", [[], ["path"], "path", 5])
def test_non_dict_args_denied(args: Any) -> None:
    decision = evaluate(fs.read_file.capability, make_session(), args, approved=False)
    assert_denied(decision, "invalid args payload")


def test_empty_or_null_args_skip_field_checks() -> None:
    session = make_session(allowed_paths=["sandbox"])
    assert evaluate(fs.read_file.capability, session, None, approved=False).allowed
    assert evaluate(fs.read_file.capability, session, {}, approved=False).allowed


@pytest.mark.parametrize(
    "path", ["sandbox", "sandbox/x", "/sandbox/x", "sandbox/a/../b", "", "./sandbox/x"]
)
def test_path_field_inside_allowed_paths(path: str) -> None:
    session = make_session(allowed_paths=["sandbox"])
    assert evaluate(fs.read_file.capability, session, {"path": path}, approved=False).allowed


@pytest.mark.parametrize(
    "path", ["other", "sandboxx", "sandbox/../other", "../sandbox", "/etc/passwd", ".", "/"]
)
def test_path_field_outside_allowed_paths(path: str) -> None:
    session = make_session(allowed_paths=["sandbox"])
    decision = evaluate(fs.read_file.capability, session, {"path": path}, approved=False)
    assert_denied(decision, "path outside allowed_paths")


def test_path_field_dotdot_denied_even_with_dot_allowlist() -> None:
    decision = evaluate(fs.read_file.capability, make_session(), {"path": "../x"}, approved=False)
    assert_denied(decision, "path outside allowed_paths")


def test_every_path_field_is_checked() -> None:
    session = make_session(allowed_paths=["sandbox"])
    ok = {"source_path": "sandbox/a", "destination_path": "sandbox/b"}
    assert evaluate(fs.move.capability, session, ok, approved=False).allowed
    bad = {"source_path": "sandbox/a", "destination_path": "elsewhere/b"}
    assert_denied(evaluate(fs.move.capability, session, bad, False), "path outside allowed_paths")


@pytest.mark.parametrize("value", [5, ["a"], {"p": "x"}, True])
def test_wrong_type_in_path_field(value: Any) -> None:
    decision = evaluate(fs.read_file.capability, make_session(), {"path": value}, approved=False)
    assert_denied(decision, "invalid path field payload")


def test_multi_and_dotted_path_fields() -> None:
    capability = make_capability(
        path_fields=[PathField(field="paths", multi=True), PathField(field="request.path")]
    )
    session = make_session(allowed_paths=["sandbox"])
    assert evaluate(capability, session, {"paths": ["sandbox/a", "sandbox/b"]}, False).allowed
    assert evaluate(capability, session, {"request": {"path": "sandbox/a"}}, False).allowed
    assert_denied(
        evaluate(capability, session, {"paths": ["sandbox/a", "etc"]}, False),
        "path outside allowed_paths",
    )
    assert_denied(
        evaluate(capability, session, {"request": {"path": "etc"}}, False),
        "path outside allowed_paths",
    )
    assert_denied(
        evaluate(capability, session, {"paths": "sandbox/a"}, False), "invalid path field payload"
    )
    assert_denied(
        evaluate(capability, session, {"paths": ["sandbox/a", 3]}, False),
        "invalid path field payload",
    )
    # A dotted field whose parent is not an object is simply absent.
    assert evaluate(capability, session, {"request": "etc"}, False).allowed


# arg rules --------------------------------------------------------------------------------------

ARG_RULES = make_capability(
    arg_fields=[
        ArgField(field="ref", max_length=10, deny_characters=[";", "$(", "\n"]),
        ArgField(field="branch", allowed_prefix=["feature/", "fix/"]),
        ArgField(field="mode", allowed_values=["fast", "slow"], allowed_prefix=["f"]),
        ArgField(field="flag", denied_prefix=["-", "--upload"]),
        ArgField(field="extra", multi=True, max_items=2, max_length=8),
    ]
)


def arg_decision(args: dict[str, Any]) -> Any:
    return evaluate(ARG_RULES, make_session(), args, approved=False)


@pytest.mark.parametrize(
    "args",
    [
        {"ref": "main"},
        {"ref": " v1.2.3 "},
        {"ref": "a" * 10},
        {"branch": "feature/x"},
        {"branch": "fix/y"},
        {"mode": "slow"},
        {"flag": "verbose"},
        {"extra": ["a", "b"]},
        {"extra": []},
        {"unrelated": "; rm -rf /"},
    ],
)
def test_arg_rules_allow(args: dict[str, Any]) -> None:
    assert arg_decision(args).allowed


@pytest.mark.parametrize(
    "args",
    [
        {"ref": ""},
        {"ref": "   "},
        {"ref": "a" * 11},
        {"ref": "a;b"},
        {"ref": "$(id)"},
        {"ref": "a\nb"},
        {"branch": "main"},
        {"branch": "features/x"},
        {"mode": "fastest"},  # allowed_values wins over allowed_prefix
        {"flag": "-x"},
        {"flag": "--upload-pack=x"},
        {"extra": ["ok", "waytoolong"]},
        {"extra": ["ok", ""]},
    ],
)
def test_arg_rules_deny(args: dict[str, Any]) -> None:
    assert_denied(arg_decision(args), "argument not allowed by policy")


def test_arg_rule_max_items() -> None:
    assert_denied(arg_decision({"extra": ["a", "b", "c"]}), "argument list exceeds allowed length")


@pytest.mark.parametrize("args", [{"ref": 5}, {"ref": ["main"]}, {"extra": "a"}, {"extra": [1]}])
def test_arg_rule_wrong_type(args: dict[str, Any]) -> None:
    assert_denied(arg_decision(args), "invalid args field payload")


# metadata allowlists ----------------------------------------------------------------------------

SUBJECTS = with_policy(subject_fields=[NamedField(field="subject")])
TOPICS = with_policy(topic_fields=[NamedField(field="topic")])
QUEUES = with_policy(queue_fields=[NamedField(field="queue")])
KEYS = with_policy(key_prefix_fields=[NamedField(field="keys", multi=True)])
NAMESPACES = with_policy(namespace_fields=[NamedField(field="namespace")])
REGISTRIES = with_policy(registry_fields=[NamedField(field="image")])
PROFILES = with_policy(profile_fields=[NamedField(field="profile_id")])


def meta_decision(
    capability: Capability, key: str, allowlist: str | None, args: dict[str, Any]
) -> Any:
    metadata = None if allowlist is None else {key: allowlist}
    return evaluate(capability, make_session(metadata=metadata), args, approved=False)


@pytest.mark.parametrize(
    ("allowlist", "subject", "allowed"),
    [
        ("sandbox.>", "sandbox.a.b", True),
        ("sandbox.>", "sandbox.a", True),
        ("sandbox.>", "sandbox", False),
        ("sandbox.>", "prod.a", False),
        ("sandbox.>", "sandboxx.a", False),
        ("dev.*", "dev.x", True),
        ("dev.*", "dev.x.y", False),
        ("dev.*.done", "dev.job.done", True),
        ("dev.*.done", "dev.job.failed", False),
        ("orders", "orders", True),
        ("orders", "orders.eu", False),
        ("prod.a, sandbox.>", "prod.a", True),
        ("prod.a, sandbox.>", "prod.b", False),
        ("*", "prod.anything", True),
        ("prod.a,*", "x", True),
        ("", "prod.a", True),
        (" , ", "prod.a", True),
        (None, "prod.a", True),
    ],
)
def test_subject_allowlist(allowlist: str | None, subject: str, allowed: bool) -> None:
    decision = meta_decision(SUBJECTS, "allowed_nats_subjects", allowlist, {"subject": subject})
    if allowed:
        assert decision.allowed
    else:
        assert_denied(decision, "subject not allowed")


@pytest.mark.parametrize(
    ("allowlist", "topic", "allowed"),
    [
        ("sandbox.", "sandbox.orders", True),
        ("sandbox.", "prod.orders", False),
        ("app.>", "app.events", True),
        ("app.>", "apps.events", False),
        ("orders-*", "orders-eu", True),
        ("orders-*", "payments-eu", False),
        ("*-events", "user-events", True),
        ("audit", "audit", True),
        ("audit", "audit2", False),
        ("team:", "team:a", True),
        ("*", "whatever", True),
    ],
)
def test_topic_allowlist(allowlist: str, topic: str, allowed: bool) -> None:
    decision = meta_decision(TOPICS, "allowed_kafka_topics", allowlist, {"topic": topic})
    if allowed:
        assert decision.allowed
    else:
        assert_denied(decision, "topic not allowed")


def test_queue_allowlist() -> None:
    key = "allowed_rabbit_queues"
    assert meta_decision(QUEUES, key, "sandbox.,jobs", {"queue": "sandbox.work"}).allowed
    assert meta_decision(QUEUES, key, "sandbox.,jobs", {"queue": "jobs"}).allowed
    assert_denied(
        meta_decision(QUEUES, key, "sandbox.,jobs", {"queue": "prod.work"}), "queue not allowed"
    )


def test_key_prefix_allowlist_is_plain_prefix_on_every_item() -> None:
    key = "allowed_redis_key_prefixes"
    assert meta_decision(KEYS, key, "sandbox:,dev:", {"keys": ["sandbox:a", "dev:b"]}).allowed
    assert_denied(
        meta_decision(KEYS, key, "sandbox:,dev:", {"keys": ["sandbox:a", "prod:b"]}),
        "key prefix not allowed",
    )
    # Prefix, not glob: "*" inside a pattern is literal.
    assert_denied(meta_decision(KEYS, key, "s*", {"keys": ["sandbox"]}), "key prefix not allowed")
    assert_denied(
        meta_decision(KEYS, key, "sandbox:", {"keys": "sandbox:a"}), "invalid field payload"
    )


def test_namespace_allowlist() -> None:
    key = "allowed_k8s_namespaces"
    assert meta_decision(NAMESPACES, key, "team-*,default", {"namespace": "team-a"}).allowed
    assert meta_decision(NAMESPACES, key, "team-*,default", {"namespace": "default"}).allowed
    assert_denied(
        meta_decision(NAMESPACES, key, "team-*,default", {"namespace": "kube-system"}),
        "namespace not allowed",
    )


def test_profile_allowlist_is_exact() -> None:
    key = "allowed_profiles"
    assert meta_decision(PROFILES, key, "dev.nats", {"profile_id": "dev.nats"}).allowed
    assert_denied(
        meta_decision(PROFILES, key, "dev.nats", {"profile_id": "dev.nats2"}), "profile not allowed"
    )
    assert_denied(
        meta_decision(PROFILES, key, "dev.*", {"profile_id": "dev.kafka"}), "profile not allowed"
    )


@pytest.mark.parametrize(
    ("allowlist", "image", "allowed"),
    [
        ("docker.io", "alpine:3", True),
        ("docker.io", "library/alpine", True),
        ("docker.io", "ghcr.io/x/y", False),
        ("ghcr.io", "ghcr.io/x/y", True),
        ("ghcr.io", "alpine:3", False),
        ("ghcr.io/org/", "ghcr.io/org/app:1", True),
        ("ghcr.io/org/", "ghcr.io/other/app:1", False),
        ("localhost:5000", "localhost:5000/app", True),
        ("*.example.com", "registry.example.com/app", True),
        ("*.example.com", "registry.example.org/app", False),
        ("alpine:3", "alpine:3", True),
        ("*", "quay.io/x", True),
    ],
)
def test_registry_allowlist(allowlist: str, image: str, allowed: bool) -> None:
    decision = meta_decision(REGISTRIES, "allowed_image_registries", allowlist, {"image": image})
    if allowed:
        assert decision.allowed
    else:
        assert_denied(decision, "registry not allowed")


@pytest.mark.parametrize(
    ("image", "registry"),
    [
        ("alpine", "docker.io"),
        ("alpine:3", "docker.io"),
        ("library/alpine", "docker.io"),
        ("ghcr.io/x/y", "ghcr.io"),
        ("localhost/app", "localhost"),
        ("registry:5000/app", "registry:5000"),
    ],
)
def test_registry_of(image: str, registry: str) -> None:
    assert registry_of(image) == registry


def test_allowlists_ignore_absent_and_empty_values() -> None:
    key = "allowed_nats_subjects"
    assert meta_decision(SUBJECTS, key, "sandbox.>", {"path": "a"}).allowed
    assert meta_decision(SUBJECTS, key, "sandbox.>", {"subject": ""}).allowed
    assert meta_decision(SUBJECTS, key, "sandbox.>", {"subject": None}).allowed
    assert_denied(
        meta_decision(SUBJECTS, key, "sandbox.>", {"subject": 7}), "invalid field payload"
    )


def test_unrelated_metadata_does_not_restrict() -> None:
    decision = meta_decision(SUBJECTS, "allowed_kafka_topics", "sandbox.", {"subject": "prod.x"})
    assert decision.allowed
