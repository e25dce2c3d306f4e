"""repo.* and go.* on a real Go module, run by the real go toolchain."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from serve_app.domain.errors import ErrorCode
from serve_app.execution.executor import ExecutionService
from serve_app.tools import build_registry
from tests.support.projects import Workspace, go_module, new_workspace, requires, write

pytestmark = requires("go", "golang-go")

PANIC = """\
panic: runtime error: index out of range [5] with length 3

goroutine 1 [running]:
main.lookup(...)
\t/work/app/main.go:11
main.main()
\t/work/app/main.go:16 +0x1d
exit status 2
"""


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    registry = build_registry()
    executor = ExecutionService(registry)
    yield Workspace(go_module(new_workspace(tmp_path)), registry, executor)
    executor.close()


async def test_detects_a_go_module(ws: Workspace) -> None:
    assert await ws.ok("repo.detect_project_type") == {"project_type": "go", "flavor": "go"}
    toolchain = await ws.ok("repo.detect_toolchain")
    assert (toolchain["language"], toolchain["build_system"], toolchain["test_framework"]) == (
        "go",
        "go",
        "go test",
    )
    assert toolchain["toolchain_available"] is True


async def test_build_and_validate(ws: Workspace) -> None:
    built = await ws.ok("repo.build", {"extra_args": ["-mod=readonly"]})
    assert built["exit_code"] == 0
    assert built["command"] == ["go", "build", "-mod=readonly", "./..."]
    write(ws.root, {"broken.go": "package calc\n\nfunc broken() { x := 1 }\n"})
    broken = await ws.ok("repo.validate")
    assert broken["exit_code"] != 0
    assert broken["language"] == "go"
    # "x declared but not used" (Go 1.19) / "declared and not used: x" (later Go)
    [diagnostic] = broken["diagnostics"]
    assert diagnostic.startswith("broken.go:3:17: error: ") and "not used" in diagnostic


async def test_failing_and_passing_test_runs(ws: Workspace) -> None:
    failing = await ws.ok("repo.test")
    assert failing["exit_code"] == 1
    assert [(f["name"], f["kind"]) for f in failing["failed_tests"]] == [
        ("TestSubBroken", "go"),
        ("example.com/calc", "package"),
    ]
    assert "calc_test.go:13: error: Sub(3, 1) = 2, want 5" in failing["diagnostics"]
    passing = await ws.ok("repo.test", {"extra_args": ["-run=TestAdd", "-count", "1"]})
    assert passing["exit_code"] == 0 and passing["failed_tests"] == []
    assert passing["command"] == ["go", "test", "-run=TestAdd", "-count", "1", "./..."]


@pytest.mark.parametrize(
    "extra_args", [["-exec=/bin/sh"], ["-toolexec", "x"], ["-o", "/tmp/x"], ["./..."]]
)
async def test_dangerous_go_flags_are_refused(ws: Workspace, extra_args: list[str]) -> None:
    await ws.fails("repo.test", {"extra_args": extra_args}, ErrorCode.POLICY_DENIED)


async def test_go_test_tool_with_coverage_and_run_pattern(ws: Workspace) -> None:
    output = await ws.ok("go.test", {"coverage": True, "run_pattern": "TestAdd"})
    assert output["exit_code"] == 0
    assert output["coverage_percent"] == 50.0  # Add covered, Sub not
    failing = await ws.ok("go.test", {"package": "./..."})
    assert failing["failed_count"] == 2 and failing["coverage_percent"] is None


async def test_failures_and_panic_summaries(ws: Workspace) -> None:
    summary = await ws.ok("repo.test_failures_summary", {"extra_args": ["-count=1"]})
    assert summary["source"] == "test_run"
    assert summary["failed_tests"][0]["name"] == "TestSubBroken"
    provided = await ws.ok(
        "repo.test_failures_summary",
        {"output": "--- FAIL: TestCreateTodo (0.00s)\nFAIL\tgithub.com/acme/todo\t0.01s"},
    )
    assert [f["name"] for f in provided["failed_tests"]] == [
        "TestCreateTodo",
        "github.com/acme/todo",
    ]
    traces = await ws.ok("repo.stacktrace_summary", {"output": PANIC})
    assert traces["trace_count"] == 1
    assert traces["stacktraces"][0] == {
        "type": "panic",
        "message": "runtime error: index out of range [5] with length 3",
        "frames": [
            "main.lookup(...) at /work/app/main.go:11",
            "main.main() at /work/app/main.go:16",
        ],
        "frame_count": 2,
    }


async def test_coverage_report_and_vet(ws: Workspace) -> None:
    coverage = await ws.ok("repo.coverage_report", {"target": "."})
    assert coverage["coverage_supported"] is True
    assert coverage["coverage_percent"] == 100.0
    assert coverage["exit_code"] == 1  # TestSubBroken still fails
    clean = await ws.ok("repo.static_analysis")
    assert clean["exit_code"] == 0 and clean["command"] == ["go", "vet", "./..."]
    write(
        ws.root, {"vet.go": 'package calc\n\nimport "fmt"\n\nfunc f() { fmt.Printf("%d", "x") }\n'}
    )
    vetted = await ws.ok("repo.static_analysis")
    assert vetted["exit_code"] != 0
    assert any(d.startswith("vet.go:5:") for d in vetted["diagnostics"]), vetted["output"]


async def test_go_build_tool_and_package(ws: Workspace) -> None:
    built = await ws.ok(
        "go.build", {"target": "./cmd/calc", "output_name": "calc", "ldflags": "-s -w"}
    )
    assert built["exit_code"] == 0, built["output"]
    assert built["compiled_binary_path"] == ".workspace-build/calc"
    assert (ws.root / ".workspace-build" / "calc").is_file()
    await ws.fails("go.build", {"ldflags": "-extldflags=-static"}, ErrorCode.POLICY_DENIED)
    await ws.fails("go.build", {"output_name": "../escape"}, ErrorCode.INVALID_ARGUMENT)
    await ws.fails("go.build", {"target": "../../elsewhere"}, ErrorCode.POLICY_DENIED)
    packaged = await ws.ok("repo.package", {"target": "./cmd/calc"})
    assert packaged["artifact_path"] == ".workspace-dist/calc"
    assert (ws.root / ".workspace-dist" / "calc").is_file()


async def test_mod_tidy_check_leaves_files_alone(ws: Workspace) -> None:
    (ws.root / "go.mod").write_text("module example.com/calc\n\ngo 1.19\n\n\n")
    before = (ws.root / "go.mod").read_text()
    checked = await ws.ok("go.mod.tidy", {"check": True})
    assert checked["exit_code"] == 1 and checked["changed_files"] == ["go.mod"]
    assert (ws.root / "go.mod").read_text() == before
    tidied = await ws.ok("go.mod.tidy")
    assert tidied["exit_code"] == 0 and tidied["changed_files"] == ["go.mod"]
    assert (ws.root / "go.mod").read_text() == "module example.com/calc\n\ngo 1.19\n"
    again = await ws.ok("go.mod.tidy", {"check": True})
    assert again["exit_code"] == 0 and again["changed_files"] == []


async def test_go_generate(ws: Workspace) -> None:
    write(ws.root, {"gen.go": "package calc\n\n//go:generate touch generated.txt\n"})
    output = await ws.ok("go.generate", {"target": "."})
    assert output["exit_code"] == 0, output["output"]
    assert (ws.root / "generated.txt").is_file()


async def test_go_caches_stay_in_the_session_home(ws: Workspace) -> None:
    await ws.ok("repo.build")
    assert (ws.root.parent / "home" / ".cache" / "go-build").is_dir()
