"""repo.* and python.* on a real Python project, run by real pytest/pip/compileall/ruff.

The service PATH starts with the test interpreter's bin directory (the project venv): `python3`
in a workspace without `.venv` is the one with pytest, on any machine.
"""

from __future__ import annotations

import importlib.util
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from serve_app.domain.errors import ErrorCode
from serve_app.execution.executor import ExecutionService
from serve_app.tools import build_registry
from tests.support.projects import (
    Workspace,
    new_workspace,
    python_project,
    service_python_first,
    write,
)

TRACEBACK = """\
Traceback (most recent call last):
  File "/srv/app/main.py", line 12, in <module>
    main()
  File "/srv/app/main.py", line 8, in main
    ratio = divide(1, 0)
  File "/srv/app/calc.py", line 2, in divide
    return a / b
ZeroDivisionError: division by zero
"""


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    service_python_first(monkeypatch)
    registry = build_registry()
    executor = ExecutionService(registry)
    yield Workspace(python_project(new_workspace(tmp_path)), registry, executor)
    executor.close()


async def test_detects_a_pytest_project(ws: Workspace) -> None:
    assert await ws.ok("repo.detect_project_type") == {
        "project_type": "python",
        "flavor": "pytest",
    }
    toolchain = await ws.ok("repo.detect_toolchain")
    assert toolchain["language"] == "python"
    assert toolchain["build_system"] == "pip"
    assert toolchain["test_framework"] == "pytest"
    assert toolchain["containerizable"] is False
    assert toolchain["toolchain_available"] is True


async def test_failing_test_run_succeeds_with_the_failure_named(ws: Workspace) -> None:
    for tool in ("repo.test", "repo.run_tests"):
        output = await ws.ok(tool)
        assert output["project_type"] == "python"
        assert output["exit_code"] == 1
        assert output["command"][1:4] == ["-m", "pytest", "-q"]
        assert [f["name"] for f in output["failed_tests"]] == [
            "tests/test_divide.py::test_divide_broken"
        ]
        assert "1 failed, 2 passed" in output["output"]


async def test_positional_extra_args_are_jailed_paths(ws: Workspace) -> None:
    selected = await ws.ok("repo.test", {"extra_args": ["tests/test_add.py::test_add"]})
    assert selected["command"][-1] == "./tests/test_add.py::test_add"
    assert selected["exit_code"] == 0 and "1 passed" in selected["output"]
    rerooted = await ws.ok("repo.test", {"extra_args": ["/tests/test_add.py"]})
    assert rerooted["command"][-1] == "./tests/test_add.py"
    assert "2 passed" in rerooted["output"]


async def test_passing_target_and_extra_args(ws: Workspace) -> None:
    passed = await ws.ok("repo.test", {"target": "tests/test_add.py"})
    assert passed["exit_code"] == 0 and passed["failed_count"] == 0
    assert "2 passed" in passed["output"]
    selected = await ws.ok("repo.test", {"extra_args": ["-k", "negative", "--maxfail=1"]})
    assert selected["exit_code"] == 0
    assert "1 passed, 2 deselected" in selected["output"]


@pytest.mark.parametrize(
    ("extra_args", "code"),
    [
        (["--rootdir=/"], ErrorCode.POLICY_DENIED),
        (["-p", "evil_plugin"], ErrorCode.POLICY_DENIED),
        (["-k", "a;b"], ErrorCode.POLICY_DENIED),
        (["../outside_test.py"], ErrorCode.POLICY_DENIED),
        (["-k"], ErrorCode.INVALID_ARGUMENT),
        # More than 8 items: refused by the arguments model before the handler's allowlist.
        (["-q"] * 9, ErrorCode.INVALID_ARGUMENT),
    ],
)
async def test_extra_args_outside_the_allowlist_are_refused(
    ws: Workspace, extra_args: list[str], code: ErrorCode
) -> None:
    result = await ws.fails("repo.test", {"extra_args": extra_args}, code)
    assert result.output is None
    assert not (ws.root / ".pytest_cache").exists()


async def test_target_must_not_be_an_option(ws: Workspace) -> None:
    result = await ws.fails("repo.test", {"target": "--collect-only"}, ErrorCode.POLICY_DENIED)
    assert "must not start with '-'" in result.error.message  # type: ignore[union-attr]
    await ws.fails("python.test", {"target": "../x"}, ErrorCode.POLICY_DENIED)


async def test_python_test_tool(ws: Workspace) -> None:
    failing = await ws.ok("python.test", {"target": "tests"})
    assert failing["exit_code"] == 1
    assert "--maxfail=1" in failing["command"]
    assert failing["failed_tests"][0]["name"] == "tests/test_divide.py::test_divide_broken"
    selected = await ws.ok("python.test", {"run_pattern": "add", "max_fail": 5})
    assert selected["exit_code"] == 0 and selected["failed_tests"] == []
    assert selected["compiled_binary_path"] == "" and selected["coverage_percent"] is None


async def test_failures_summary_by_running_and_from_output(ws: Workspace) -> None:
    ran = await ws.ok("repo.test_failures_summary")
    assert ran["source"] == "test_run" and ran["exit_code"] == 1
    assert ran["failed_count"] == 1
    assert ran["failed_tests"][0] == {
        "name": "tests/test_divide.py::test_divide_broken",
        "kind": "python",
        "line": ran["failed_tests"][0]["line"],
    }
    assert ran["summary"].startswith("identified 1 failing tests")
    assert "short test summary" in ran["output_excerpt"]
    provided = await ws.ok(
        "repo.test_failures_summary",
        {"output": "FAILED tests/test_a.py::test_x - assert 1 == 2\nFAILED tests/b.py::test_y"},
    )
    assert provided["source"] == "provided_output" and provided["command"] == []
    assert [f["name"] for f in provided["failed_tests"]] == [
        "tests/test_a.py::test_x",
        "tests/b.py::test_y",
    ]
    limited = await ws.ok(
        "repo.test_failures_summary", {"output": "FAILED a::x\nFAILED a::y", "max_failures": 1}
    )
    assert limited["failed_count"] == 1


async def test_stacktrace_summary_of_a_python_traceback(ws: Workspace) -> None:
    output = await ws.ok("repo.stacktrace_summary", {"output": TRACEBACK})
    assert output["trace_count"] == 1
    trace = output["stacktraces"][0]
    assert trace["type"] == "python_traceback"
    assert trace["exception"] == "ZeroDivisionError"
    assert trace["message"] == "ZeroDivisionError: division by zero"
    assert trace["frames"] == [
        "/srv/app/main.py:12 in <module>",
        "/srv/app/main.py:8 in main",
        "/srv/app/calc.py:2 in divide",
    ]
    capped = await ws.ok("repo.stacktrace_summary", {"output": TRACEBACK, "max_frames": 1})
    assert capped["stacktraces"][0]["frames"] == ["/srv/app/main.py:12 in <module>"]
    assert capped["stacktraces"][0]["frame_count"] == 3


async def test_validate_reports_syntax_errors_and_leaves_no_bytecode(ws: Workspace) -> None:
    clean = await ws.ok("python.validate")
    assert clean["exit_code"] == 0 and clean["diagnostics"] == []
    write(ws.root, {"broken.py": "def f(:\n    pass\n"})
    broken = await ws.ok("python.validate", {"target": "."})
    assert broken["exit_code"] == 1
    assert len(broken["diagnostics"]) == 1
    assert broken["diagnostics"][0].startswith("broken.py:1: error: SyntaxError: ")
    repo = await ws.ok("repo.validate")
    assert repo["language"] == "python" and repo["exit_code"] == 1
    assert not list(ws.root.rglob("__pycache__"))


async def test_static_analysis_reports_lint_findings(ws: Workspace) -> None:
    clean = await ws.ok("repo.static_analysis", {"target": "calc.py"})
    assert clean["exit_code"] == 0
    write(ws.root, {"lint_me.py": "import os\n"})
    found = await ws.ok("repo.static_analysis")
    assert found["exit_code"] == 1
    assert any(d.startswith("lint_me.py:1:8: ") and "os" in d for d in found["diagnostics"])


async def test_coverage_report(ws: Workspace) -> None:
    output = await ws.ok("repo.coverage_report", {"target": "tests/test_add.py"})
    assert output["project_type"] == "python"
    if importlib.util.find_spec("pytest_cov") is None:
        assert output["coverage_supported"] is False
        assert output["coverage_percent"] is None
    else:
        assert output["coverage_supported"] is True
        assert isinstance(output["coverage_percent"], float)
    assert output["exit_code"] == 0


async def test_build_and_package(ws: Workspace) -> None:
    built = await ws.ok("repo.build")
    assert built["exit_code"] == 0 and "compileall" in built["command"]
    packaged = await ws.ok("repo.package")
    assert packaged["exit_code"] == 0, packaged["output"]
    assert packaged["artifact_path"] == ".workspace-dist/calc-0.1.0-py3-none-any.whl"
    assert (ws.root / packaged["artifact_path"]).is_file()


async def test_install_deps_creates_the_workspace_venv_which_tests_then_use(
    ws: Workspace,
) -> None:
    write(ws.root, {"requirements.txt": ".\n"})
    output = await ws.ok("python.install_deps")
    assert output["exit_code"] == 0, output["output"]
    assert output["venv_path"] == ".venv" and output["requirements_file"] == "./requirements.txt"
    venv_python = ws.root / ".venv" / "bin" / "python"
    imported = subprocess.run(
        [str(venv_python), "-c", "import calc; print(calc.add(2, 3))"],
        cwd=ws.root.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert imported.stdout.strip() == "5", imported.stderr
    # From now on the project's tests run with the venv's interpreter, which lacks pytest.
    missing = await ws.fails("python.test", {}, ErrorCode.EXECUTION_FAILED)
    assert missing.exit_code == 127
    assert "pytest is not installed" in missing.error.message  # type: ignore[union-attr]
    assert missing.output["command"][0] == str(venv_python)


async def test_install_deps_refusals_leave_no_venv(ws: Workspace) -> None:
    await ws.fails("python.install_deps", {"use_venv": False}, ErrorCode.INVALID_ARGUMENT)
    await ws.fails(
        "python.install_deps", {"requirements_file": "nope.txt"}, ErrorCode.INVALID_ARGUMENT
    )
    await ws.fails(
        "python.install_deps", {"requirements_file": "../../etc/passwd"}, ErrorCode.POLICY_DENIED
    )
    nothing = await ws.ok("python.install_deps")
    assert nothing["diagnostics"] == ["no requirements file found; nothing installed"]
    assert not (ws.root / ".venv").exists()
