"""Tools touch a workspace only through their `WorkspaceRuntime`: no module under
serve_app/tools imports a host I/O module (os, shutil, subprocess, tempfile, glob, io; from
pathlib only the pure `PurePosixPath`), calls the builtin `open`, or reaches past the runtime into
its local implementation. And each tool declares whether its processes reach the network."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import serve_app.tools
from serve_app.tools import builtin_tools

TOOLS_DIR = Path(serve_app.tools.__file__).parent
MODULES = sorted(TOOLS_DIR.rglob("*.py"))
FORBIDDEN_MODULES = frozenset({"os", "shutil", "subprocess", "tempfile", "glob", "io"})
PATHLIB_ALLOWED = frozenset({"PurePosixPath"})
# The runtime's local implementation and the host-side process runner and path resolution.
FORBIDDEN_INTERNALS = frozenset(
    {
        "serve_app.execution.process",
        "serve_app.runtime.local",
        "serve_app.runtime.local_files",
        "serve_app.runtime.sandbox",
    }
)
FORBIDDEN_NAMES = {"serve_app.domain.paths": frozenset({"resolve"})}

NETWORK_TOOLS = frozenset(
    {
        "git.fetch",
        "git.pull",
        "git.push",
        "go.mod.tidy",
        "node.install",
        "python.install_deps",
        "repo.build",
        "repo.package",
        "rust.build",
    }
)


def _top(module: str) -> str:
    return module.split(".", 1)[0]


def violations(source: str) -> list[str]:
    """What in `source` bypasses the workspace runtime, one line each."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        where = f"line {getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _top(alias.name) in FORBIDDEN_MODULES | {"pathlib"}:
                    found.append(f"{where}: import {alias.name}")
                if alias.name in FORBIDDEN_INTERNALS:
                    found.append(f"{where}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names = {alias.name for alias in node.names}
            if node.level == 0 and _top(module) in FORBIDDEN_MODULES:
                found.append(f"{where}: from {module} import {', '.join(sorted(names))}")
            if (
                node.level == 0
                and _top(module) == "pathlib"
                and (module != "pathlib" or not names <= PATHLIB_ALLOWED)
            ):
                found.append(f"{where}: from {module} import {', '.join(sorted(names))}")
            if module in FORBIDDEN_INTERNALS:
                found.append(f"{where}: from {module} import ...")
            for name in sorted(names & FORBIDDEN_NAMES.get(module, frozenset())):
                found.append(f"{where}: from {module} import {name}")
            if module == "serve_app.runtime" and names & {
                name.rsplit(".", 1)[-1] for name in FORBIDDEN_INTERNALS
            }:
                found.append(f"{where}: from serve_app.runtime import {', '.join(sorted(names))}")
        elif isinstance(node, ast.Call):
            function = node.func
            if isinstance(function, ast.Name) and function.id in ("open", "__import__"):
                found.append(f"{where}: {function.id}(...)")
            elif (
                isinstance(function, ast.Attribute)
                and function.attr == "import_module"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
                and (
                    _top(node.args[0].value) in FORBIDDEN_MODULES | {"pathlib"}
                    or node.args[0].value in FORBIDDEN_INTERNALS
                )
            ):
                found.append(f"{where}: import_module({node.args[0].value!r})")
    return found


def test_every_tool_module_is_checked() -> None:
    names = {path.name for path in MODULES}
    assert {"base.py", "fs.py", "git.py", "repo.py", "projects.py", "gpu.py"} <= names


@pytest.mark.parametrize("module", MODULES, ids=lambda path: path.name)
def test_tool_modules_do_no_host_io(module: Path) -> None:
    assert violations(module.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    "source",
    [
        "import os",
        "import os.path",
        "import shutil as sh",
        "import subprocess",
        "import tempfile",
        "import glob",
        "import io",
        "import pathlib",
        "from os import path",
        "from os.path import join",
        "from io import BytesIO",
        "from pathlib import Path",
        "from pathlib import PurePosixPath, Path",
        "from pathlib import PurePath",
        "from serve_app.execution.process import run_command",
        "from serve_app.runtime.local_files import LocalFiles",
        "from serve_app.runtime import local",
        "import serve_app.runtime.sandbox",
        "from serve_app.domain.paths import resolve",
        "data = open('x').read()",
        "module = __import__('os')",
        "module = importlib.import_module('shutil')",
    ],
)
def test_the_check_catches_each_bypass(source: str) -> None:
    assert violations(source) != []


def test_the_check_admits_what_tools_may_use() -> None:
    source = (
        "from pathlib import PurePosixPath\n"
        "from serve_app.domain.paths import WorkspacePath, within_allowed\n"
        "from serve_app.runtime.interface import CommandResult, WorkspaceRuntime\n"
        "import re, json, tomllib, asyncio\n"
        "async def f(ctx):\n"
        "    return await ctx.runtime.read_file(await ctx.path('x'), max_bytes=1)\n"
    )
    assert violations(source) == []


# network ------------------------------------------------------------------------------------------


def test_every_capability_declares_network_as_a_bool() -> None:
    for tool in builtin_tools():
        assert type(tool.capability.constraints.network) is bool, tool.name


def test_exactly_the_tools_that_fetch_or_publish_may_reach_the_network() -> None:
    names = {tool.name for tool in builtin_tools()}
    assert names >= NETWORK_TOOLS
    networked = {tool.name for tool in builtin_tools() if tool.capability.constraints.network}
    assert networked == NETWORK_TOOLS


@pytest.mark.parametrize(
    "name",
    ["repo.test", "repo.run_tests", "c.test", "python.test", "go.test", "rust.test", "node.test"],
)
def test_test_runners_stay_offline(name: str) -> None:
    tool = next(tool for tool in builtin_tools() if tool.name == name)
    assert tool.capability.constraints.network is False
