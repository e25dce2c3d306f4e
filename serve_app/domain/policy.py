"""The static policy engine (contract §5.1 step 3 and §5.2). Stateless and side-effect free."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from serve_app.domain.capability import ArgField, Capability, NamedField, RiskLevel, Scope
from serve_app.domain.errors import ErrorCode
from serve_app.domain.models import Session
from serve_app.domain.paths import within_allowed, workspace_relative

PRIVILEGED_SCOPES = frozenset({Scope.CLUSTER, Scope.EXTERNAL})
PRIVILEGED_ROLES = frozenset({"devops", "platform_admin"})
HIGH_RISK_ROLE = "platform_admin"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    code: ErrorCode | None = None
    reason: str = ""

    @classmethod
    def allow(cls) -> Decision:
        return cls(True)

    @classmethod
    def deny(cls, reason: str, code: ErrorCode = ErrorCode.POLICY_DENIED) -> Decision:
        return cls(False, code, reason)


class _FieldPayloadError(Exception):
    pass


def evaluate(capability: Capability, session: Session, args: Any, approved: bool) -> Decision:
    """Decide whether `session`'s principal may invoke `capability` with `args`."""
    roles = {role.strip().lower() for role in session.principal.roles}
    if capability.scope in PRIVILEGED_SCOPES and not roles & PRIVILEGED_ROLES:
        return Decision.deny("principal roles cannot access tool scope")
    if capability.scope not in set(Scope):
        return Decision.deny("principal roles cannot access tool scope")
    if capability.risk_level is RiskLevel.HIGH and HIGH_RISK_ROLE not in roles:
        return Decision.deny("high risk capability requires platform_admin role")
    if capability.requires_approval and not approved:
        return Decision.deny("tool requires explicit approval", ErrorCode.APPROVAL_REQUIRED)
    if args is None or args == {}:
        return Decision.allow()
    if not isinstance(args, dict):
        return Decision.deny("invalid args payload")
    try:
        return _evaluate_fields(capability, session, args)
    except _FieldPayloadError as exc:
        return Decision.deny(str(exc))


def _evaluate_fields(capability: Capability, session: Session, args: dict[str, Any]) -> Decision:
    policy = capability.policy
    for path_field in policy.path_fields:
        for value in _values(
            args, path_field.field, path_field.multi, "invalid path field payload"
        ):
            if value and not within_allowed(workspace_relative(value), session.allowed_paths):
                return Decision.deny("path outside allowed_paths")
    for arg_field in policy.arg_fields:
        decision = _check_arg_field(args, arg_field)
        if not decision.allowed:
            return decision
    allowlists: list[tuple[list[NamedField], str, str, Any]] = [
        (policy.profile_fields, "allowed_profiles", "profile not allowed", _match_exact),
        (policy.subject_fields, "allowed_nats_subjects", "subject not allowed", _match_subject),
        (policy.topic_fields, "allowed_kafka_topics", "topic not allowed", _match_pattern),
        (policy.queue_fields, "allowed_rabbit_queues", "queue not allowed", _match_pattern),
        (
            policy.key_prefix_fields,
            "allowed_redis_key_prefixes",
            "key prefix not allowed",
            _match_key_prefix,
        ),
        (
            policy.namespace_fields,
            "allowed_k8s_namespaces",
            "namespace not allowed",
            _match_pattern,
        ),
        (
            policy.registry_fields,
            "allowed_image_registries",
            "registry not allowed",
            _match_registry,
        ),
    ]
    for fields, metadata_key, reason, matcher in allowlists:
        patterns = _csv(session.meta(metadata_key))
        if not patterns or "*" in patterns:
            continue
        for named in fields:
            for value in _values(args, named.field, named.multi, "invalid field payload"):
                if value and not any(matcher(value, pattern) for pattern in patterns):
                    return Decision.deny(reason)
    return Decision.allow()


def _check_arg_field(args: dict[str, Any], rule: ArgField) -> Decision:
    values = _values(args, rule.field, rule.multi, "invalid args field payload")
    if rule.multi and rule.max_items is not None and len(values) > rule.max_items:
        return Decision.deny("argument list exceeds allowed length")
    present = _lookup(args, rule.field) is not _MISSING
    if not present:
        return Decision.allow()
    for raw in values:
        value = raw.strip()
        if not value or (rule.max_length is not None and len(value) > rule.max_length):
            return Decision.deny("argument not allowed by policy")
        if rule.deny_characters and any(chars in value for chars in rule.deny_characters):
            return Decision.deny("argument not allowed by policy")
        if rule.denied_prefix and any(value.startswith(p) for p in rule.denied_prefix):
            return Decision.deny("argument not allowed by policy")
        if rule.allowed_values:
            if value not in rule.allowed_values:
                return Decision.deny("argument not allowed by policy")
        elif rule.allowed_prefix and not any(value.startswith(p) for p in rule.allowed_prefix):
            return Decision.deny("argument not allowed by policy")
    return Decision.allow()


_MISSING = object()


def _lookup(args: dict[str, Any], dotted: str) -> Any:
    current: Any = args
    for part in dotted.split("."):
        if not isinstance(current, dict) or part not in current:
            return _MISSING
        current = current[part]
    return current


def _values(args: dict[str, Any], dotted: str, multi: bool, error: str) -> list[str]:
    value = _lookup(args, dotted)
    if value is _MISSING or value is None:
        return []
    if multi:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise _FieldPayloadError(error)
        return list(value)
    if not isinstance(value, str):
        raise _FieldPayloadError(error)
    return [value]


def _csv(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


def _match_exact(value: str, pattern: str) -> bool:
    return value == pattern


def _match_subject(value: str, pattern: str) -> bool:
    """NATS token matching: `*` matches one token, a trailing `>` matches one or more."""
    tokens = value.split(".")
    pattern_tokens = pattern.split(".")
    for index, token in enumerate(pattern_tokens):
        if token == ">":
            return index == len(pattern_tokens) - 1 and len(tokens) > index
        if index >= len(tokens):
            return False
        if token not in ("*", tokens[index]):
            return False
    return len(tokens) == len(pattern_tokens)


def _match_pattern(value: str, pattern: str) -> bool:
    """`*`, exact, `prefix.>`, a single-`*` glob, or a prefix ending in `.`, `:` or `/`."""
    if pattern in ("*", value):
        return True
    if pattern.endswith(".>"):
        return value.startswith(pattern[:-1])
    if pattern.count("*") == 1:
        prefix, suffix = pattern.split("*")
        return (
            len(value) >= len(prefix) + len(suffix)
            and value.startswith(prefix)
            and value.endswith(suffix)
        )
    if pattern[-1:] in (".", ":", "/"):
        return value.startswith(pattern)
    return False


def _match_key_prefix(value: str, pattern: str) -> bool:
    return value.startswith(pattern)


def registry_of(image_ref: str) -> str:
    first, sep, _ = image_ref.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def _match_registry(value: str, pattern: str) -> bool:
    return _match_pattern(value, pattern) or _match_pattern(registry_of(value), pattern)
