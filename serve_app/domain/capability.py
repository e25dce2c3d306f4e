"""Capability metadata (contract §4.1): what a tool is, how risky it is, which args policy
inspects."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Scope(StrEnum):
    WORKSPACE = "workspace"
    REPO = "repo"
    CLUSTER = "cluster"
    EXTERNAL = "external"


class SideEffects(StrEnum):
    NONE = "none"
    REVERSIBLE = "reversible"
    IRREVERSIBLE = "irreversible"


class RiskLevel(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Idempotency(StrEnum):
    GUARANTEED = "guaranteed"
    BEST_EFFORT = "best-effort"
    NONE = "none"


class CostHint(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Constraints(Spec):
    timeout_seconds: int
    max_retries: int = 0
    allowed_paths: list[str] | None = None
    output_limit_kb: int | None = None
    network: bool = False
    """Whether the tool's processes reach the network (the sandbox enforces it)."""


class PathField(Spec):
    field: str
    multi: bool = False


class ArgField(Spec):
    field: str
    multi: bool = False
    max_items: int | None = None
    max_length: int | None = None
    allowed_values: list[str] | None = None
    allowed_prefix: list[str] | None = None
    denied_prefix: list[str] | None = None
    deny_characters: list[str] | None = None


class NamedField(Spec):
    field: str
    multi: bool = False


class PolicyMetadata(Spec):
    path_fields: list[PathField] = Field(default_factory=list)
    arg_fields: list[ArgField] = Field(default_factory=list)
    profile_fields: list[NamedField] = Field(default_factory=list)
    subject_fields: list[NamedField] = Field(default_factory=list)
    topic_fields: list[NamedField] = Field(default_factory=list)
    queue_fields: list[NamedField] = Field(default_factory=list)
    key_prefix_fields: list[NamedField] = Field(default_factory=list)
    namespace_fields: list[NamedField] = Field(default_factory=list)
    registry_fields: list[NamedField] = Field(default_factory=list)


class Observability(Spec):
    trace_name: str = "workspace.tools"
    span_name: str


class Capability(Spec):
    name: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    scope: Scope
    side_effects: SideEffects
    risk_level: RiskLevel
    requires_approval: bool
    idempotency: Idempotency
    constraints: Constraints
    preconditions: list[str] = Field(default_factory=list)
    postconditions: list[str] = Field(default_factory=list)
    cost_hint: CostHint = CostHint.LOW
    policy: PolicyMetadata = Field(default_factory=PolicyMetadata)
    observability: Observability
    examples: list[dict[str, Any]] = Field(default_factory=list)
    aliases: list[str] = Field(default_factory=list)
