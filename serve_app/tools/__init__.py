"""Tool families and the registry of their tools. A tool is one typed declaration
(`declare.py`); a family is a list of tools or a factory of them (`family.py`)."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence

from serve_app.config import Settings
from serve_app.domain.capability import Capability
from serve_app.tools.base import Tool
from serve_app.tools.family import Family, Toolbox, tools_of


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


def builtin_families() -> list[Family]:
    from serve_app.tools import (
        artifact,
        c,
        fs,
        git,
        go,
        gpu,
        k8s,
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
        fs.TOOLS,
        git.TOOLS,
        artifact.TOOLS,
        gpu.TOOLS,
        repo_detect.TOOLS,
        repo.TOOLS,
        repo_summaries.TOOLS,
        repo_changes.TOOLS,
        repo_search.TOOLS,
        go.TOOLS,
        rust.TOOLS,
        node.TOOLS,
        python.TOOLS,
        c.TOOLS,
        k8s.family,
    ]


def builtin_tools(toolbox: Toolbox | None = None) -> list[Tool]:
    toolbox = toolbox or Toolbox.for_catalog(Settings())
    return [
        tool
        for family in builtin_families()
        for tool in tools_of(family, toolbox, "a built-in family")
    ]


def load_family(import_path: str, toolbox: Toolbox) -> list[Tool]:
    """The tools of an extra family given as `package.module:NAME`: a list of tools, or a factory
    that takes a `Toolbox` and returns one."""
    module_name, _, attribute = import_path.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"tool family must look like package.module:NAME, got {import_path!r}")
    family = getattr(importlib.import_module(module_name), attribute)
    return tools_of(family, toolbox, import_path)


def build_registry(
    extra_families: Sequence[str] = (), *, toolbox: Toolbox | None = None
) -> ToolRegistry:
    """Every tool, made with `toolbox` (by default one whose clients are made on first use)."""
    toolbox = toolbox or Toolbox(settings=Settings())
    tools = builtin_tools(toolbox)
    for import_path in extra_families:
        tools.extend(load_family(import_path, toolbox))
    return ToolRegistry(tools)
