"""The whole catalog, as agents see it: valid schemas generated from the tools' models, examples
that validate, well-formed unique names, a handler for every capability, `docs/TOOLS.md` up to
date, and no change a client of the first catalog would notice (`tests/fixtures/catalog_v1.json`,
captured before tools were declared as typed models)."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

import serve_app.tools
from serve_app.tools import build_registry, builtin_tools
from serve_app.tools.base import Tool

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "catalog_v1.json"
NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
# Keys a generated schema may add to a property of the first catalog: the default the handler
# applied, and what a nested array or object holds.
ADDED_KEYS = {"default", "items", "additionalProperties", "properties", "required"}
TOOLS = builtin_tools()


def fixture() -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in json.loads(FIXTURE.read_text())}


def served() -> dict[str, dict[str, Any]]:
    return {c.name: c.model_dump(mode="json") for c in build_registry().capabilities()}


def walk(schema: Any) -> list[dict[str, Any]]:
    """Every sub-schema of `schema`."""
    found: list[dict[str, Any]] = []
    if isinstance(schema, dict):
        found.append(schema)
        for value in schema.values():
            found.extend(walk(value))
    elif isinstance(schema, list):
        for value in schema:
            found.extend(walk(value))
    return found


@pytest.mark.parametrize("tool", TOOLS, ids=lambda tool: tool.name)
def test_schemas_are_plain_valid_json_schema(tool: Tool) -> None:
    for schema in (tool.capability.input_schema, tool.capability.output_schema):
        Draft202012Validator.check_schema(schema)
        assert schema["type"] == "object"
        for node in walk(schema):
            assert "$ref" not in node and "$defs" not in node, node
            assert "title" not in node or isinstance(node["title"], dict), node
            if node.get("type") == "object" and "properties" in node:
                assert node.get("additionalProperties") is False, node
    assert isinstance(tool.capability.input_schema["required"], list)


@pytest.mark.parametrize("tool", TOOLS, ids=lambda tool: tool.name)
def test_examples_validate_against_the_schema(tool: Tool) -> None:
    validator = Draft202012Validator(tool.capability.input_schema)
    assert tool.capability.examples, "every tool shows at least one example"
    for example in tool.capability.examples:
        errors = [error.message for error in validator.iter_errors(example)]
        assert errors == [], example


def test_names_are_unique_and_well_formed() -> None:
    names = [tool.name for tool in TOOLS]
    aliases = [alias for tool in TOOLS for alias in tool.capability.aliases]
    assert len(set(names + aliases)) == len(names) + len(aliases)
    for name in names + aliases:
        assert NAME.fullmatch(name), name


def test_every_tool_a_family_declares_is_registered() -> None:
    """A `Tool` defined in a family module but missing from the catalog is a handler without a
    capability; the registry pairs every capability with its handler by construction."""
    registered = {id(tool) for tool in TOOLS}
    for module_info in pkgutil.iter_modules(serve_app.tools.__path__):
        module = importlib.import_module(f"serve_app.tools.{module_info.name}")
        for attribute, value in vars(module).items():
            if isinstance(value, Tool):
                assert id(value) in registered, f"{module_info.name}.{attribute}"
    for tool in TOOLS:
        assert callable(tool.handler)


def test_handlers_take_typed_arguments() -> None:
    untyped = [tool.name for tool in TOOLS if tool.arguments is None]
    assert untyped == []


def test_docs_tools_md_is_current() -> None:
    generated = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_tools_doc.py")],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    assert (ROOT / "docs" / "TOOLS.md").read_text() == generated, "run `make docs`"


# clients see no change --------------------------------------------------------------------------

# Deliberate differences from the first catalog, each listed in docs/API.md.
NEW_TOOLS: set[str] = {
    "k8s.apply_manifest",
    "k8s.get_deployments",
    "k8s.get_images",
    "k8s.get_logs",
    "k8s.get_pods",
    "k8s.get_services",
    "k8s.restart_deployment",
    "k8s.rollout_status",
}


def test_no_tool_of_the_first_catalog_is_gone() -> None:
    assert sorted(set(fixture()) - set(served())) == []
    assert sorted(set(served()) - set(fixture())) == sorted(NEW_TOOLS)


@pytest.mark.parametrize("name", sorted(fixture()))
def test_metadata_is_unchanged(name: str) -> None:
    before, now = fixture()[name], served()[name]
    for key in before:
        if key in ("input_schema", "output_schema"):
            continue
        if key == "examples" and not before[key]:
            continue  # a tool without examples gained one
        assert now[key] == before[key], key


@pytest.mark.parametrize("name", sorted(fixture()))
def test_arguments_are_unchanged(name: str) -> None:
    """Same names, required fields, types, bounds, enums, patterns and descriptions; a
    generated schema only adds defaults and what nested values hold."""
    before, now = fixture()[name]["input_schema"], served()[name]["input_schema"]
    assert now["required"] == before["required"]
    assert sorted(now["properties"]) == sorted(before["properties"])
    for field, spec in before["properties"].items():
        generated = now["properties"][field]
        for key, value in spec.items():
            assert generated.get(key) == value, (field, key)
        assert set(generated) - set(spec) <= ADDED_KEYS, (field, set(generated) - set(spec))


@pytest.mark.parametrize("name", sorted(fixture()))
def test_outputs_keep_their_fields_and_types(name: str) -> None:
    before, now = fixture()[name]["output_schema"], served()[name]["output_schema"]
    assert sorted(now["properties"]) == sorted(before["properties"])
    for field, spec in before["properties"].items():
        if "type" in spec:
            assert now["properties"][field].get("type") == spec["type"], field
