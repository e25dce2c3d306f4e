"""Tiny real projects for the repo.* and language tools (each with a passing and a failing test),
and a harness that invokes tools through the ExecutionService on a session over a temp workspace.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from serve_app.domain.errors import ErrorCode
from serve_app.domain.execution import ExecutionRequest, ExecutionResult
from serve_app.domain.models import Principal, Runtime, Session, utcnow
from serve_app.execution.executor import ExecutionService
from serve_app.tools import ToolRegistry

INSTALLER = "scripts/install_toolchains.sh"


def requires(command: str, package: str) -> pytest.MarkDecorator:
    """Skip only when the toolchain is absent after `make test` ran the installer."""
    return pytest.mark.skipif(
        shutil.which(command) is None,
        reason=f"{command} toolchain not installed ({INSTALLER} could not install {package})",
    )


def service_python_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """Put the test interpreter's bin directory (the project venv, which has pytest) first on the
    service PATH that tools inherit, as a deployment does for its own environment: `python3` in
    a workspace without `.venv` then has pytest on any machine."""
    bin_dir = str(Path(sys.executable).parent)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root


def git(root: Path, *args: str) -> str:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(root.parent / "home"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    done = subprocess.run(
        ["git", *args], cwd=root, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


def commit_all(root: Path, message: str = "initial") -> None:
    if not (root / ".git").exists():
        git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


# projects ---------------------------------------------------------------------------------------


def go_module(root: Path) -> Path:
    return write(
        root,
        {
            "go.mod": "module example.com/calc\n\ngo 1.19\n",
            "calc.go": """
                package calc

                func Add(a, b int) int {
                \treturn a + b
                }

                func Sub(a, b int) int {
                \treturn a - b
                }
            """,
            "calc_test.go": """
                package calc

                import "testing"

                func TestAdd(t *testing.T) {
                \tif Add(1, 2) != 3 {
                \t\tt.Fatal("Add(1, 2) != 3")
                \t}
                }

                func TestSubBroken(t *testing.T) {
                \tif Sub(3, 1) != 5 {
                \t\tt.Errorf("Sub(3, 1) = %d, want 5", Sub(3, 1))
                \t}
                }
            """,
            "cmd/calc/main.go": """
                package main

                import (
                \t"fmt"

                \t"example.com/calc"
                )

                func main() {
                \tfmt.Println(calc.Add(2, 3))
                }
            """,
        },
    )


def cargo_crate(root: Path) -> Path:
    """A crate without dependencies; its failing test exists only with `--features=broken`."""
    return write(
        root,
        {
            "Cargo.toml": """
                [package]
                name = "calc"
                version = "0.1.0"
                edition = "2021"

                [features]
                broken = []
            """,
            "src/lib.rs": """
                pub fn add(a: i32, b: i32) -> i32 {
                    a + b
                }

                #[cfg(test)]
                mod tests {
                    use super::*;

                    #[test]
                    fn adds_numbers() {
                        assert_eq!(add(1, 2), 3);
                    }

                    #[cfg(feature = "broken")]
                    #[test]
                    fn subtracts_numbers() {
                        assert_eq!(add(1, 2), 0);
                    }
                }
            """,
            "src/main.rs": """
                fn main() {
                    println!("{}", calc::add(2, 3));
                }
            """,
        },
    )


def node_package(root: Path) -> Path:
    """`npm test` runs `node --test`; no dependencies, nothing to install."""
    return write(
        root,
        {
            "package.json": """
                {
                  "name": "calc",
                  "version": "1.0.0",
                  "main": "calc.js",
                  "scripts": {
                    "test": "node --test",
                    "build": "node build.js",
                    "lint": "node lint.js"
                  }
                }
            """,
            "calc.js": """
                exports.add = (a, b) => a + b;
                exports.sub = (a, b) => a - b;
            """,
            "build.js": """
                require('fs').writeFileSync('built.txt', 'built\\n');
                console.log('built');
            """,
            "lint.js": """
                // A stand-in linter that reports in the unix format (path:line:col: message).
                const fs = require('fs');
                let problems = 0;
                fs.readFileSync('calc.js', 'utf8').split('\\n').forEach((text, i) => {
                  if (text.includes('var ')) {
                    console.log(`calc.js:${i + 1}:1: error: no var declarations`);
                    problems++;
                  }
                });
                process.exit(problems ? 1 : 0);
            """,
            "test/add.test.js": """
                const test = require('node:test');
                const assert = require('node:assert');
                const { add } = require('../calc');
                test('adds numbers', () => { assert.strictEqual(add(1, 2), 3); });
            """,
            "test/sub.test.js": """
                const test = require('node:test');
                const assert = require('node:assert');
                const { sub } = require('../calc');
                test('subtracts numbers', () => { assert.strictEqual(sub(3, 1), 5); });
            """,
        },
    )


# A PEP 517 backend inside the project: `pip wheel` / `pip install .` build it offline.
_PYTHON_BACKEND = """
    import base64
    import hashlib
    import pathlib
    import zipfile

    NAME, VERSION = "calc", "0.1.0"
    DIST_INFO = f"{NAME}-{VERSION}.dist-info"
    WHEEL = "Wheel-Version: 1.0\\nGenerator: calc\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    METADATA = f"Metadata-Version: 2.1\\nName: {NAME}\\nVersion: {VERSION}\\n"


    def _record(path, data):
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        return f"{path},sha256={digest},{len(data)}"


    def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
        name = f"{NAME}-{VERSION}-py3-none-any.whl"
        files = {
            "calc.py": pathlib.Path("calc.py").read_bytes(),
            f"{DIST_INFO}/METADATA": METADATA.encode(),
            f"{DIST_INFO}/WHEEL": WHEEL.encode(),
        }
        record = [_record(path, data) for path, data in files.items()]
        record.append(f"{DIST_INFO}/RECORD,,")
        with zipfile.ZipFile(pathlib.Path(wheel_directory) / name, "w") as wheel:
            for path, data in files.items():
                wheel.writestr(path, data)
            wheel.writestr(f"{DIST_INFO}/RECORD", "\\n".join(record) + "\\n")
        return name
"""


def python_project(root: Path, *, failing: bool = True) -> Path:
    files = {
        "pyproject.toml": """
            [project]
            name = "calc"
            version = "0.1.0"

            [build-system]
            requires = []
            build-backend = "backend"
            backend-path = ["_build"]
        """,
        "_build/backend.py": _PYTHON_BACKEND,
        "calc.py": """
            def add(a, b):
                return a + b


            def divide(a, b):
                return a / b
        """,
        "tests/test_add.py": """
            from calc import add


            def test_add():
                assert add(1, 2) == 3


            def test_add_negative():
                assert add(-1, -2) == -3
        """,
    }
    if failing:
        files["tests/test_divide.py"] = """
            from calc import divide


            def test_divide_broken():
                assert divide(6, 3) == 3
        """
    return write(root, files)


def c_project(root: Path) -> Path:
    """A library, a main program and a Unity-style test that reports `file:line:name:FAIL`."""
    return write(
        root,
        {
            "calc.h": "int add(int a, int b);\nint sub(int a, int b);\n",
            "calc.c": """
                #include "calc.h"

                int add(int a, int b) { return a + b; }

                int sub(int a, int b) { return a - b; }
            """,
            "main.c": """
                #include <stdio.h>
                #include "calc.h"

                int main(void) {
                    printf("%d\\n", add(2, 3));
                    return 0;
                }
            """,
            "tests/calc_test.c": """
                #include <stdio.h>
                #include "../calc.h"

                static int failures = 0;

                #define CHECK(name, cond) do { \\
                    if (cond) { printf("%s:%d:%s:PASS\\n", __FILE__, __LINE__, name); } \\
                    else { printf("%s:%d:%s:FAIL\\n", __FILE__, __LINE__, name); failures++; } \\
                } while (0)

                int main(void) {
                    CHECK("test_add", add(1, 2) == 3);
                    CHECK("test_sub", sub(3, 1) == 5);
                    return failures ? 1 : 0;
                }
            """,
            "tests/pass_test.c": """
                #include "../calc.h"

                int main(void) { return add(1, 2) == 3 ? 0 : 1; }
            """,
        },
    )


# harness ----------------------------------------------------------------------------------------


def make_session(root: Path, allowed_paths: list[str] | None = None) -> Session:
    now = utcnow()
    return Session(
        id="sess-repo",
        workspace_path=str(root),
        runtime=Runtime(kind="local"),
        allowed_paths=allowed_paths if allowed_paths is not None else ["."],
        principal=Principal(tenant_id="tenant", actor_id="agent", roles=["developer"]),
        created_at=now,
        expires_at=now + timedelta(hours=1),
    )


def new_workspace(tmp_path: Path) -> Path:
    """`<tmp>/t/s/repo` with the per-session `home` beside it, like WORKSPACE_ROOT."""
    root = tmp_path / "t" / "s" / "repo"
    root.mkdir(parents=True)
    (root.parent / "home").mkdir()
    return root


@dataclass
class Workspace:
    root: Path
    registry: ToolRegistry
    executor: ExecutionService
    allowed_paths: list[str] | None = None

    @property
    def session(self) -> Session:
        return make_session(self.root, self.allowed_paths)

    async def call(
        self, tool: str, args: dict[str, Any] | None = None, timeout: float | None = None
    ) -> ExecutionResult:
        """Invoke `tool` with its catalog timeout (or `timeout`), as the service would after
        policy and schema checks."""
        found = self.registry.get(tool)
        assert found is not None, f"{tool} is not registered"
        request = ExecutionRequest(
            invocation_id=f"inv-{time.monotonic_ns()}",
            tool_name=tool,
            args=args or {},
            session=self.session,
            timeout_seconds=timeout or found.capability.constraints.timeout_seconds,
        )
        return await self.executor.execute(request)

    async def ok(self, tool: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        """A succeeded invocation's output (its exit code may be non-zero: a completed run)."""
        result = await self.call(tool, args)
        assert result.error is None, (result.error, result.output)
        assert isinstance(result.output, dict)
        assert result.exit_code == result.output.get("exit_code", 0), result.output
        return result.output

    async def fails(
        self, tool: str, args: dict[str, Any] | None, code: ErrorCode
    ) -> ExecutionResult:
        result = await self.call(tool, args)
        assert result.error is not None, result.output
        assert result.error.code == code, result.error
        return result
