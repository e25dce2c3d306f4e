"""The tool catalog: capabilities by name and alias, argument validation against each JSON Schema,
and the contract's shallow output-schema check."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from serve_app.domain.capability import Capability
from serve_app.domain.errors import ServiceError, invalid_argument


class Catalog:
    def __init__(self, capabilities: Iterable[Capability]) -> None:
        self._by_name: dict[str, Capability] = {}
        self._aliases: dict[str, str] = {}
        self._validators: dict[str, Draft202012Validator] = {}
        for capability in capabilities:
            if capability.name in self._by_name or capability.name in self._aliases:
                raise ValueError(f"duplicate tool name {capability.name}")
            Draft202012Validator.check_schema(capability.input_schema)
            self._by_name[capability.name] = capability
            self._validators[capability.name] = Draft202012Validator(capability.input_schema)
        for capability in self._by_name.values():
            for alias in capability.aliases:
                if alias in self._by_name or alias in self._aliases:
                    raise ValueError(f"alias {alias} collides with another tool")
                self._aliases[alias] = capability.name

    def get(self, name: str) -> Capability | None:
        """Look a tool up by its name or one of its aliases."""
        return self._by_name.get(self._aliases.get(name, name))

    def all(self) -> list[Capability]:
        return sorted(self._by_name.values(), key=lambda capability: capability.name)

    def __len__(self) -> int:
        return len(self._by_name)

    def validate_args(self, capability: Capability, args: Any) -> dict[str, Any]:
        """Validate `args` against the tool's input schema; `null` counts as `{}`."""
        value = {} if args is None else args
        error = best_match(self._validators[capability.name].iter_errors(value))
        if error is not None:
            where = ".".join(str(part) for part in error.absolute_path) or "args"
            raise invalid_argument(f"invalid {capability.name} args: {where}: {error.message}")
        assert isinstance(value, dict)
        return value


_PRIMITIVES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "number": (int, float),
    "integer": (int, float),
}


def check_output(capability: Capability, output: Any) -> None:
    """Contract §3.2 step 9: top-level type, required keys and primitive property types."""
    schema = capability.output_schema
    if output is None or not schema:
        return
    expected = schema.get("type")
    if expected == "object":
        if not isinstance(output, dict):
            raise ServiceError("internal", "tool output does not match its output schema")
        for key in schema.get("required", []):
            if key not in output:
                raise ServiceError("internal", f"tool output lacks required field {key}")
        for key, spec in schema.get("properties", {}).items():
            if key in output and output[key] is not None and not _is_type(output[key], spec):
                raise ServiceError("internal", f"tool output field {key} has the wrong type")


def _is_type(value: Any, spec: dict[str, Any]) -> bool:
    kind = spec.get("type")
    if not isinstance(kind, str) or kind not in _PRIMITIVES:
        return True
    if isinstance(value, bool) and kind in ("number", "integer"):
        return False
    if kind == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _PRIMITIVES[kind])
