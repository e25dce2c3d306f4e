"""repo.* and node.* on a real npm package whose `npm test` is `node --test` (no dependencies,
nothing fetched from a registry)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from serve_app.domain.errors import ErrorCode
from serve_app.execution.executor import ExecutionService
from serve_app.tools import build_registry
from tests.support.projects import Workspace, new_workspace, node_package, requires, write

pytestmark = [requires("node", "nodejs"), requires("npm", "npm")]

NODE_ERROR = """\
/app/server.js:12
    throw new TypeError('port must be a number');
    ^

TypeError: port must be a number
    at listen (/app/server.js:12:11)
    at Object.<anonymous> (/app/server.js:20:1)
    at Module._compile (node:internal/modules/cjs/loader:1256:14)

Node.js v20.20.2
"""


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    registry = build_registry()
    executor = ExecutionService(registry)
    yield Workspace(node_package(new_workspace(tmp_path)), registry, executor)
    executor.close()


async def test_detects_npm_and_typescript_flavors(ws: Workspace) -> None:
    assert await ws.ok("repo.detect_project_type") == {"project_type": "node", "flavor": "npm"}
    toolchain = await ws.ok("repo.detect_toolchain")
    assert toolchain["language"] == "javascript"
    assert toolchain["test_framework"] == "node:test"
    write(ws.root, {"tsconfig.json": "{}", "Dockerfile": "FROM node:20\n"})
    assert (await ws.ok("repo.detect_project_type"))["flavor"] == "typescript"
    toolchain = await ws.ok("repo.detect_toolchain")
    assert toolchain["language"] == "typescript" and toolchain["containerizable"] is True


async def test_failing_and_passing_test_runs(ws: Workspace) -> None:
    failing = await ws.ok("repo.test")
    assert failing["command"] == ["npm", "test"]
    assert failing["exit_code"] == 1
    assert [(f["name"], f["kind"]) for f in failing["failed_tests"]] == [
        ("subtracts numbers", "tap")
    ]
    passing = await ws.ok("repo.test", {"target": "test/add.test.js"})
    assert passing["command"] == ["npm", "test", "--", "./test/add.test.js"]
    assert passing["exit_code"] == 0 and passing["failed_tests"] == []
    tool = await ws.ok("node.test", {"target": "test/sub.test.js"})
    assert tool["exit_code"] == 1 and tool["failed_count"] == 1
    await ws.fails("node.test", {"target": "../../outside.js"}, ErrorCode.POLICY_DENIED)
    await ws.fails("repo.test", {"extra_args": ["--prefix=/"]}, ErrorCode.POLICY_DENIED)


async def test_summaries(ws: Workspace) -> None:
    summary = await ws.ok("repo.test_failures_summary", {"max_diagnostics": 5})
    assert summary["source"] == "test_run"
    assert [f["name"] for f in summary["failed_tests"]] == ["subtracts numbers"]
    traces = await ws.ok("repo.stacktrace_summary", {"output": NODE_ERROR})
    assert traces["stacktraces"] == [
        {
            "type": "javascript_error",
            "message": "TypeError: port must be a number",
            "exception": "TypeError",
            "frames": [
                "listen (/app/server.js:12:11)",
                "Object.<anonymous> (/app/server.js:20:1)",
                "Module._compile (node:internal/modules/cjs/loader:1256:14)",
            ],
            "frame_count": 3,
        }
    ]


async def test_build_lint_validate_and_package(ws: Workspace) -> None:
    built = await ws.ok("repo.build")
    assert built["command"] == ["npm", "run", "build", "--if-present"]
    assert built["exit_code"] == 0 and (ws.root / "built.txt").is_file()
    clean = await ws.ok("node.lint")
    assert clean["exit_code"] == 0
    write(ws.root, {"calc.js": "var add = (a, b) => a + b;\nexports.add = add;\n"})
    lint = await ws.ok("repo.static_analysis")
    assert lint["exit_code"] == 1
    assert lint["diagnostics"] == ["calc.js:1:1: error: no var declarations"]
    valid = await ws.ok("repo.validate")
    assert valid["command"] == ["node", "--check", "./calc.js"] and valid["exit_code"] == 0
    write(ws.root, {"calc.js": "exports.add = (a, b) => a +;\n"})
    invalid = await ws.ok("repo.validate")
    assert invalid["exit_code"] == 1 and "SyntaxError" in invalid["output"]
    write(ws.root, {"calc.js": "exports.add = (a, b) => a + b;\n"})
    packaged = await ws.ok("repo.package")
    assert packaged["artifact_path"] == ".workspace-dist/calc-1.0.0.tgz"
    assert (ws.root / packaged["artifact_path"]).is_file()
    typecheck = await ws.ok("node.typecheck")  # no typecheck script: --if-present
    assert typecheck["exit_code"] == 0


async def test_install_without_dependencies(ws: Workspace) -> None:
    no_lock = await ws.ok("node.install")  # npm ci needs a lock file: a completed, failed run
    assert no_lock["command"] == ["npm", "ci", "--ignore-scripts"]
    assert no_lock["exit_code"] != 0
    installed = await ws.ok("node.install", {"use_ci": False})
    assert installed["exit_code"] == 0, installed["output"]
    assert json.loads((ws.root / "package-lock.json").read_text())["name"] == "calc"
    again = await ws.ok("node.install", {"use_ci": True, "ignore_scripts": True})
    assert again["exit_code"] == 0, again["output"]
