"""repo.* and c.* on a real C project, compiled by the real cc and run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from serve_app.domain.errors import ErrorCode
from serve_app.execution.executor import ExecutionService
from serve_app.tools import build_registry
from tests.support.projects import Workspace, c_project, new_workspace, requires, write

pytestmark = requires("cc", "gcc")


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    registry = build_registry()
    executor = ExecutionService(registry)
    yield Workspace(c_project(new_workspace(tmp_path)), registry, executor)
    executor.close()


async def test_detects_c_by_sources(ws: Workspace) -> None:
    assert await ws.ok("repo.detect_project_type") == {"project_type": "c", "flavor": "cc"}
    assert (await ws.ok("repo.detect_toolchain"))["build_system"] == "cc"


async def test_build_links_every_non_test_source(ws: Workspace) -> None:
    built = await ws.ok("repo.build", {"extra_args": ["-DNDEBUG", "-g"]})
    assert built["exit_code"] == 0, built["output"]
    assert built["command"][-2:] == ["./calc.c", "./main.c"]
    assert (ws.root / ".workspace-build" / "c-app").is_file()
    tool = await ws.ok("c.build", {"source": "main.c", "output_name": "app", "standard": "c99"})
    assert tool["exit_code"] != 0  # main.c alone does not link: add() is in calc.c
    assert tool["compiled_binary_path"] == ""


async def test_failing_and_passing_tests(ws: Workspace) -> None:
    failing = await ws.ok("repo.test")
    assert failing["exit_code"] == 1
    assert [(f["name"], f["kind"]) for f in failing["failed_tests"]] == [("test_sub", "c")]
    assert "test_add:PASS" in failing["output"]
    passing = await ws.ok("c.test", {"source": "tests/pass_test.c", "output_name": "pass"})
    assert passing["exit_code"] == 0
    assert passing["compiled_binary_path"] == ".workspace-build/pass"
    assert passing["command"][0] == "cc" and "./tests/pass_test.c" in passing["command"]
    compiled_only = await ws.ok("c.test", {"run": False})
    assert compiled_only["exit_code"] == 0
    assert compiled_only["compiled_binary_path"] == ".workspace-build/c-test"
    summary = await ws.ok("repo.test_failures_summary")
    assert summary["failed_tests"][0]["name"] == "test_sub"


async def test_compiler_diagnostics(ws: Workspace) -> None:
    write(ws.root, {"calc.c": '#include "calc.h"\nint add(int a, int b) { return a + c; }\n'})
    checked = await ws.ok("repo.validate")
    assert checked["exit_code"] == 1
    assert any(
        d.startswith("calc.c:2:36: error: ") and "undeclared" in d for d in checked["diagnostics"]
    ), checked["diagnostics"]
    failed_build = await ws.ok("c.build")
    assert failed_build["exit_code"] == 1 and failed_build["compiled_binary_path"] == ""


async def test_static_analysis_warnings(ws: Workspace) -> None:
    write(ws.root, {"extra.c": "int unused(void) { int x; return 0; }\n"})
    analysed = await ws.ok("repo.static_analysis", {"target": "extra.c"})
    assert analysed["exit_code"] == 0  # warnings only
    assert any(
        d.startswith("extra.c:1:24: warning: unused variable") for d in analysed["diagnostics"]
    ), analysed["diagnostics"]


async def test_package_and_refusals(ws: Workspace) -> None:
    packaged = await ws.ok("repo.package")
    assert packaged["artifact_path"] == ".workspace-dist/c-app"
    assert (ws.root / ".workspace-dist" / "c-app").is_file()
    coverage = await ws.ok("repo.coverage_report")
    assert coverage["coverage_supported"] is False and coverage["exit_code"] == 1
    await ws.fails("c.build", {"standard": "gnu11"}, ErrorCode.INVALID_ARGUMENT)
    await ws.fails("c.build", {"source": "calc.h"}, ErrorCode.INVALID_ARGUMENT)
    await ws.fails("c.build", {"source": "../../x.c"}, ErrorCode.POLICY_DENIED)
    for extra_args in (["-fplugin=evil.so"], ["-o", "/tmp/x"], ["-D$(id)"], ["-Dx y"]):
        result = await ws.call("repo.build", {"extra_args": extra_args})
        assert result.error is not None, extra_args
        assert result.error.code in (ErrorCode.POLICY_DENIED, ErrorCode.INVALID_ARGUMENT)


async def test_build_output_cannot_be_redirected_through_a_symlink(
    ws: Workspace, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (ws.root / ".workspace-build").symlink_to(outside)
    await ws.fails("c.build", {}, ErrorCode.POLICY_DENIED)
    assert list(outside.iterdir()) == []
