"""Tool families. A tool is its capability next to its handler; a family is a list of tools."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence

from serve_app.domain.capability import Capability
from serve_app.tools.base import Tool


class ToolRegistry:
    def __init__(self, tools: Iterable[Tool]) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            if tool.name in self._tools:
                raise ValueError(f"duplicate tool {tool.name}")
            self._tools[tool.name] = tool

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def capabilities(self) -> list[Capability]:
        return [tool.capability for tool in self._tools.values()]


def builtin_tools() -> list[Tool]:
    from serve_app.tools import (
        artifact,
        c,
        fs,
        git,
        go,
        gpu,
        node,
        python,
        repo,
        repo_changes,
        repo_detect,
        repo_search,
        repo_summaries,
        rust,
    )

    return [
        *fs.TOOLS,
        *git.TOOLS,
        *artifact.TOOLS,
        *gpu.TOOLS,
        *repo_detect.TOOLS,
        *repo.TOOLS,
        *repo_summaries.TOOLS,
        *repo_changes.TOOLS,
        *repo_search.TOOLS,
        *go.TOOLS,
        *rust.TOOLS,
        *node.TOOLS,
        *python.TOOLS,
        *c.TOOLS,
    ]


def load_family(import_path: str) -> list[Tool]:
    """Load an extra tool family given as `package.module:ATTRIBUTE` (a list of tools)."""
    module_name, _, attribute = import_path.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"tool family must look like package.module:NAME, got {import_path!r}")
    family = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(family, list) or not all(isinstance(tool, Tool) for tool in family):
        raise ValueError(f"{import_path} is not a list of tools")
    return family


def build_registry(extra_families: Sequence[str] = ()) -> ToolRegistry:
    tools = builtin_tools()
    for import_path in extra_families:
        tools.extend(load_family(import_path))
    return ToolRegistry(tools)
