"""The catalog: lookup by name and alias, JSON-schema argument validation, shallow output check."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema.exceptions import SchemaError

from serve_app.domain.capability import Capability
from serve_app.domain.catalog import Catalog, check_output
from serve_app.domain.errors import ErrorCode, ServiceError
from serve_app.tools import build_registry, builtin_tools, fs


def full_catalog() -> Catalog:
    return Catalog(build_registry().capabilities())


def renamed(capability: Capability, name: str, aliases: list[str] | None = None) -> Capability:
    return capability.model_copy(update={"name": name, "aliases": aliases or []})


def with_output_schema(schema: dict[str, Any]) -> Capability:
    return fs.stat.capability.model_copy(update={"output_schema": schema})


def invalid(catalog: Catalog, capability: Capability, args: Any) -> str:
    with pytest.raises(ServiceError) as caught:
        catalog.validate_args(capability, args)
    assert caught.value.code is ErrorCode.INVALID_ARGUMENT
    return caught.value.message


def internal(capability: Capability, output: Any) -> str:
    with pytest.raises(ServiceError) as caught:
        check_output(capability, output)
    assert caught.value.code is ErrorCode.INTERNAL
    return caught.value.message


# lookup -----------------------------------------------------------------------------------------


def test_get_by_name_and_alias() -> None:
    catalog = full_catalog()
    assert catalog.get("fs.read_file") is fs.read_file.capability
    assert catalog.get("fs.read") is fs.read_file.capability
    assert catalog.get("fs.write") is fs.write_file.capability
    assert catalog.get("fs.write_file") is fs.write_file.capability
    assert catalog.get("fs.nope") is None
    assert catalog.get("") is None


def test_all_is_sorted_by_name_and_excludes_aliases() -> None:
    catalog = full_catalog()
    names = [capability.name for capability in catalog.all()]
    assert names == sorted(names)
    assert len(catalog) == len(builtin_tools()) == len(names)
    assert "fs.read" not in names
    assert set(names) == {tool.name for tool in builtin_tools()}


def test_all_sorts_regardless_of_input_order() -> None:
    catalog = Catalog([fs.stat.capability, fs.copy.capability, fs.list_files.capability])
    assert [c.name for c in catalog.all()] == ["fs.copy", "fs.list", "fs.stat"]


def test_duplicate_name_raises() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        Catalog([fs.read_file.capability, fs.list_files.capability, fs.read_file.capability])


def test_alias_colliding_with_a_name_raises() -> None:
    with pytest.raises(ValueError, match=r"fs\.list"):
        Catalog([fs.list_files.capability, renamed(fs.stat.capability, "x.stat", ["fs.list"])])
    with pytest.raises(ValueError, match=r"fs\.read"):
        Catalog([fs.read_file.capability, renamed(fs.stat.capability, "fs.read")])


def test_alias_colliding_with_another_alias_raises() -> None:
    with pytest.raises(ValueError, match=r"fs\.read"):
        Catalog([fs.read_file.capability, renamed(fs.stat.capability, "x.stat", ["fs.read"])])


def test_invalid_input_schema_is_rejected() -> None:
    broken = fs.stat.capability.model_copy(update={"input_schema": {"type": "no-such-type"}})
    with pytest.raises(SchemaError, match="no-such-type"):
        Catalog([broken])


# validate_args ----------------------------------------------------------------------------------


def test_validate_args_accepts_valid_args_and_returns_them() -> None:
    catalog = full_catalog()
    args = {"path": "a.txt", "max_bytes": 10}
    assert catalog.validate_args(fs.read_file.capability, args) == args
    assert catalog.validate_args(fs.list_files.capability, {}) == {}


def test_validate_args_none_counts_as_empty_object() -> None:
    catalog = full_catalog()
    assert catalog.validate_args(fs.list_files.capability, None) == {}
    message = invalid(catalog, fs.read_file.capability, None)
    assert "'path' is a required property" in message
    assert message.startswith("invalid fs.read_file args:")


def test_validate_args_names_the_field() -> None:
    catalog = full_catalog()
    assert "path" in invalid(catalog, fs.read_file.capability, {})
    message = invalid(catalog, fs.read_file.capability, {"path": 5})
    assert message.startswith("invalid fs.read_file args: path:")
    assert "max_bytes" in invalid(catalog, fs.read_file.capability, {"path": "a", "max_bytes": 0})
    assert "max_bytes" in invalid(
        catalog, fs.read_file.capability, {"path": "a", "max_bytes": 2 << 20}
    )
    assert "max_entries" in invalid(catalog, fs.list_files.capability, {"max_entries": 1001})
    assert "encoding" in invalid(
        catalog, fs.write_file.capability, {"path": "a", "content": "", "encoding": "hex"}
    )
    assert "mode" in invalid(catalog, fs.mkdir.capability, {"path": "d", "mode": "999"})
    assert "strategy" in invalid(
        catalog, fs.patch.capability, {"unified_diff": "x", "strategy": "force"}
    )


@pytest.mark.parametrize("args", [[], "path", 3])
def test_validate_args_rejects_non_objects(args: Any) -> None:
    message = invalid(full_catalog(), fs.list_files.capability, args)
    assert "args:" in message


# check_output -----------------------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "required": ["count"],
    "properties": {
        "count": {"type": "integer"},
        "ratio": {"type": "number"},
        "name": {"type": "string"},
        "ok": {"type": "boolean"},
        "items": {"type": "array"},
        "extra": {"type": "object"},
        "anything": {"description": "no type"},
    },
}


def test_check_output_accepts_matching_output() -> None:
    capability = with_output_schema(SCHEMA)
    check_output(
        capability,
        {
            "count": 1,
            "ratio": 0.5,
            "name": "n",
            "ok": True,
            "items": [],
            "extra": {},
            "anything": 3,
        },
    )
    check_output(capability, {"count": 1, "name": None, "unknown": object()})
    check_output(capability, None)


def test_check_output_wrong_top_level_type() -> None:
    capability = with_output_schema(SCHEMA)
    outputs: list[Any] = [[], "text", 3]
    for output in outputs:
        assert "output schema" in internal(capability, output)


def test_check_output_missing_required_field() -> None:
    assert "count" in internal(with_output_schema(SCHEMA), {"name": "x"})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("count", "3"),
        ("count", 3.5),
        ("count", True),
        ("ratio", "0.5"),
        ("ratio", False),
        ("name", 5),
        ("ok", "yes"),
        ("ok", 1),
        ("items", {}),
        ("extra", []),
    ],
)
def test_check_output_wrong_property_type(field: str, value: Any) -> None:
    output = {"count": 1, field: value}
    assert field in internal(with_output_schema(SCHEMA), output)


def test_check_output_integer_accepts_integral_float() -> None:
    capability = with_output_schema(SCHEMA)
    check_output(capability, {"count": 3.0})
    check_output(capability, {"count": 3, "ratio": 2})


def test_check_output_without_schema_accepts_anything() -> None:
    check_output(with_output_schema({}), ["anything"])
    check_output(with_output_schema({"type": "array"}), {"not": "checked"})


def test_real_tool_schemas_accept_real_shapes() -> None:
    check_output(
        fs.list_files.capability, {"entries": [{"path": "a"}], "count": 1, "truncated": False}
    )
    assert "count" in internal(
        fs.list_files.capability, {"entries": [], "count": "1", "truncated": False}
    )
