"""How a tool is declared: one decorated handler whose typed arguments and output models carry
every bound, enum, default and description; the capability's JSON Schemas are generated from
them.

    class ReadArgs(Arguments):
        path: Path
        max_bytes: Annotated[int, Field(ge=1, le=MAX, description="Default 65536")] = 65536

    class ReadOutput(Output):
        path: str
        content: str

    @tool(name="fs.read_file", description="…", scope=Scope.WORKSPACE, …)
    async def read_file(ctx: ToolContext, args: ReadArgs) -> ToolResult[ReadOutput]:
        …

The decorator returns a `Tool`; a family module lists its tools. The schemas agents see are
plain JSON Schema objects: `additionalProperties: false`, fields inlined (no `$ref`), optional
fields without a `null` branch, no generated titles.
"""

from __future__ import annotations

import typing
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, Required, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict, Unpack

from serve_app.domain.capability import (
    ArgField,
    Capability,
    Constraints,
    CostHint,
    Idempotency,
    Observability,
    PathField,
    PolicyMetadata,
    RiskLevel,
    Scope,
    SideEffects,
)
from serve_app.domain.paths import MAX_PATH_BYTES
from serve_app.tools.base import Tool, ToolContext, ToolResult

A = TypeVar("A", bound="Arguments")
OutputModel = TypeVar("OutputModel", bound="Output")


class Arguments(BaseModel):
    """A tool's arguments: unknown names are refused, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Output(BaseModel):
    """A tool's output. Only the fields a handler sets are reported (an unset optional field is
    absent, not `null`)."""

    model_config = ConfigDict(extra="forbid")

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


# Field types every family uses.
WorkspacePathArg = Annotated[str, Field(max_length=MAX_PATH_BYTES)]


def bounded(minimum: int, maximum: int, description: str | None = None) -> Any:
    """An integer field's bounds (and description), for `Annotated[int, bounded(1, 100)]`."""
    return Field(ge=minimum, le=maximum, description=description)


# schemas ----------------------------------------------------------------------------------------

_NOISE = ("title",)


def _inline(node: Any, definitions: dict[str, Any]) -> Any:
    """`node` with every `$ref` replaced by its definition, titles dropped and optional fields'
    `null` branch removed."""
    if isinstance(node, list):
        return [_inline(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        merged = {**definitions[name], **{k: v for k, v in node.items() if k != "$ref"}}
        return _inline(merged, definitions)
    cleaned: dict[str, Any] = {}
    for key, value in node.items():
        if key in _NOISE and not isinstance(value, dict):
            continue
        if key in ("properties", "$defs", "patternProperties"):
            cleaned[key] = {name: _inline(item, definitions) for name, item in value.items()}
        else:
            cleaned[key] = _inline(value, definitions)
    variants = cleaned.get("anyOf")
    if isinstance(variants, list) and {"type": "null"} in variants:
        rest = [variant for variant in variants if variant != {"type": "null"}]
        del cleaned["anyOf"]
        if len(rest) == 1:
            cleaned = {**rest[0], **cleaned}
        else:
            cleaned["anyOf"] = rest
    if cleaned.get("default", 0) is None:
        del cleaned["default"]
    if cleaned.get("additionalProperties") is True:
        del cleaned["additionalProperties"]
    return cleaned


def catalog_schema(
    model: type[BaseModel], *, mode: typing.Literal["validation", "serialization"]
) -> dict[str, Any]:
    """The JSON Schema agents see for `model`."""
    raw = model.model_json_schema(mode=mode)
    definitions = raw.pop("$defs", {})
    schema: dict[str, Any] = _inline(raw, definitions)
    schema.pop("description", None)
    schema.setdefault("properties", {})
    schema["required"] = list(schema.get("required", []))
    return {"type": "object", **{k: v for k, v in schema.items() if k != "type"}}


# declaration ------------------------------------------------------------------------------------


class Metadata(TypedDict, total=False):
    """What a tool declares besides its models (see `Capability`)."""

    name: Required[str]
    description: Required[str]
    scope: Required[Scope]
    risk: Required[RiskLevel]
    approval: Required[bool]
    side_effects: Required[SideEffects]
    idempotency: Required[Idempotency]
    timeout: Required[int]
    output_kb: Required[int]
    network: bool
    path_fields: Sequence[PathField]
    arg_fields: Sequence[ArgField]
    cost: CostHint
    preconditions: Sequence[str]
    postconditions: Sequence[str]
    examples: Sequence[dict[str, Any]]
    aliases: Sequence[str]


def capability(
    *, arguments: type[Arguments], output: type[Output], **metadata: Unpack[Metadata]
) -> Capability:
    """A capability with the catalog's conventions, its schemas generated from the models."""
    name = metadata["name"]
    return Capability(
        name=name,
        description=metadata["description"],
        input_schema=catalog_schema(arguments, mode="validation"),
        output_schema=catalog_schema(output, mode="serialization"),
        scope=metadata["scope"],
        side_effects=metadata["side_effects"],
        risk_level=metadata["risk"],
        requires_approval=metadata["approval"],
        idempotency=metadata["idempotency"],
        constraints=Constraints(
            timeout_seconds=metadata["timeout"],
            max_retries=0,
            output_limit_kb=metadata["output_kb"],
            network=metadata.get("network", False),
        ),
        preconditions=list(metadata.get("preconditions", ())),
        postconditions=list(metadata.get("postconditions", ())),
        cost_hint=metadata.get("cost", CostHint.LOW),
        policy=PolicyMetadata(
            path_fields=list(metadata.get("path_fields", ())),
            arg_fields=list(metadata.get("arg_fields", ())),
        ),
        observability=Observability(span_name=name),
        examples=list(metadata.get("examples", ())),
        aliases=list(metadata.get("aliases", ())),
    )


def build(
    handler: Callable[[ToolContext, A], Awaitable[ToolResult[OutputModel]]],
    *,
    arguments: type[A],
    output: type[OutputModel],
    **metadata: Unpack[Metadata],
) -> Tool:
    """A tool from a handler and its models named explicitly: for families whose handlers are
    made by a factory (one handler shape for several tools)."""
    return Tool(capability(arguments=arguments, output=output, **metadata), handler, arguments)


def _models(handler: Callable[..., Any]) -> tuple[type[Arguments], type[Output]]:
    hints = typing.get_type_hints(handler)
    arguments = hints.get("args")
    if not (isinstance(arguments, type) and issubclass(arguments, Arguments)):
        raise TypeError(f"{handler.__qualname__}: `args` must be annotated with an Arguments model")
    returned = hints.get("return")
    inner = typing.get_args(returned)
    if len(inner) != 1 or not (isinstance(inner[0], type) and issubclass(inner[0], Output)):
        raise TypeError(f"{handler.__qualname__} must return ToolResult[<an Output model>]")
    return arguments, inner[0]


def tool(
    **metadata: Unpack[Metadata],
) -> Callable[[Callable[[ToolContext, A], Awaitable[ToolResult[OutputModel]]]], Tool]:
    """Declare a tool: the decorated handler's `args` annotation is its arguments model and its
    `ToolResult[...]` return annotation names its output model."""

    def declare(handler: Callable[[ToolContext, A], Awaitable[ToolResult[OutputModel]]]) -> Tool:
        arguments, output = _models(handler)
        return Tool(capability(arguments=arguments, output=output, **metadata), handler, arguments)

    return declare
