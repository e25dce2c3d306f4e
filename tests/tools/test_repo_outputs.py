"""The modules split out of repo.py and projects.py: outputs of the repo.* tools stay within their
tool's output limit however much they find (the executor fails a larger output), and what the
fitting keeps."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from serve_app.execution.executor import ExecutionService
from serve_app.tools import ToolRegistry, build_registry, git_status, repo, toolchain_output
from serve_app.tools.fitting import TRUNCATION_NOTE, encoded_size, fit_command_result, leading, size
from serve_app.tools.languages import FailedTest
from serve_app.tools.repo_summaries import Stacktrace
from tests.support.projects import Workspace, new_workspace, write

KIB = 1024


@pytest.fixture
def registry() -> ToolRegistry:
    return build_registry()


@pytest.fixture
def ws(tmp_path: Path, registry: ToolRegistry) -> Iterator[Workspace]:
    executor = ExecutionService(registry)
    yield Workspace(new_workspace(tmp_path), registry, executor)
    executor.close()


def limit_of(registry: ToolRegistry, name: str) -> int:
    tool = registry.get(name)
    assert tool is not None and tool.capability.constraints.output_limit_kb is not None
    return tool.capability.constraints.output_limit_kb * KIB


def compact(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


# fitting ----------------------------------------------------------------------------------------


def test_leading_keeps_the_longest_head_within_the_budget() -> None:
    items = [f"item {n} \x01" for n in range(50)]
    for budget in (0, 1, 2, 20, 100, 333, 10_000):
        kept = leading(items, budget)
        assert kept == items[: len(kept)]
        assert len(kept) == len(items) or size(items[: len(kept) + 1]) > budget
        assert not kept or size(kept) <= budget
    models = [FailedTest(name=f"t{n}", kind="go", line="--- FAIL") for n in range(10)]
    assert size(leading(models, 200)) <= 200
    assert size(models) == compact([model.dump() for model in models])


def test_run_outputs_are_fitted_to_the_limit() -> None:
    noise = "\x01" * 300
    text = "".join(
        f"m.c:{n}:1: error: {noise}\nFAILED t.py::test_{n} - {noise}\n" for n in range(400)
    )
    found = toolchain_output.failed_tests(text, 200)
    output = repo.TestsOutput(
        project_type="python",
        command=["pytest"],
        exit_code=1,
        diagnostics=toolchain_output.diagnostics(text, 80),
        output=text,
        failed_count=len(found),
        failed_tests=[FailedTest(**failure) for failure in found],
    )
    limit = 64 * KIB
    assert compact(output.dump()) > limit
    fit_command_result(output, limit)
    assert compact(output.dump()) <= limit
    assert output.failed_count == 200 and 0 < len(output.failed_tests) < 200
    assert 0 < len(output.diagnostics) < 80
    assert output.output.endswith(TRUNCATION_NOTE)
    small = repo.RunOutput(
        project_type="go", command=["go"], exit_code=0, diagnostics=[], output="ok"
    )
    assert fit_command_result(small, limit).output == "ok"


# parsers ----------------------------------------------------------------------------------------


def test_a_trace_names_its_exception_only_when_it_has_one() -> None:
    text = (
        "Traceback (most recent call last):\n"
        '  File "app.py", line 3, in <module>\n'
        "ValueError: boom\n"
        "\n"
        "panic: runtime error\n\ngoroutine 1 [running]:\nmain.main()\n\t/w/main.go:11\n"
    )
    python, go = (Stacktrace(**trace).dump() for trace in toolchain_output.stacktraces(text, 5, 5))
    assert python["exception"] == "ValueError" and python["frames"] == ["app.py:3 in <module>"]
    assert "exception" not in go and go["type"] == "panic"


def test_status_modes() -> None:
    assert git_status.parse_status_text(" M a\n")[0] == "working_tree"
    assert git_status.parse_status_text("M\ta\n")[0] == "base_ref_diff"


# the tools stay within their limits -------------------------------------------------------------


async def test_a_huge_failures_summary_fits(ws: Workspace, registry: ToolRegistry) -> None:
    noise = "\x01" * 3900
    text = "".join(
        f"FAILED t.py::test_{n} - {noise}\nm.c:{n}:1: error: {noise}\n" for n in range(200)
    )
    output = await ws.ok(
        "repo.test_failures_summary",
        {"output": text, "max_failures": 200, "max_diagnostics": 200},
    )
    assert compact(output) <= limit_of(registry, "repo.test_failures_summary")
    assert output["failed_count"] == 200 and 0 < len(output["failed_tests"]) < 200
    assert output["failed_tests"][0]["name"] == "t.py::test_0"
    assert output["source"] == "provided_output"


async def test_a_huge_stacktrace_summary_fits(ws: Workspace, registry: ToolRegistry) -> None:
    frame = '  File "' + "\x01" * 300 + '.py", line 1, in f\n'
    trace = "Traceback (most recent call last):\n" + frame * 80 + "ValueError: boom\n\n"
    output = await ws.ok(
        "repo.stacktrace_summary", {"output": trace * 50, "max_traces": 50, "max_frames": 80}
    )
    assert compact(output) <= limit_of(registry, "repo.stacktrace_summary")
    assert output["trace_count"] == 50 and 0 < len(output["stacktraces"]) < 50
    assert output["stacktraces"][0]["frame_count"] == 80
    assert output["stacktraces"][0]["exception"] == "ValueError"


async def test_huge_changed_files_fit(ws: Workspace, registry: ToolRegistry) -> None:
    directory = "\x01" * 1000
    status = "".join(f"?? {directory}/{n:04}.txt\n" for n in range(2000))
    output = await ws.ok("repo.changed_files", {"output": status, "max_files": 2000})
    assert compact(output) <= limit_of(registry, "repo.changed_files")
    assert 0 < output["changed_count"] == len(output["changed_files"]) < 2000
    assert output["truncated"] is True
    assert output["summary"] == "identified 2000 changed files"


async def test_huge_search_results_fit(ws: Workspace, registry: ToolRegistry) -> None:
    quotes = '"' * 600
    (ws.root / "big.txt").write_text(f"needle {quotes}\n" * 2000)
    for name, args, found in (
        ("repo.symbol_search", {"symbol": "needle", "max_results": 2000}, "matches"),
        ("repo.find_references", {"symbol": "needle", "max_references": 2000}, "references"),
    ):
        output = await ws.ok(name, args)
        assert compact(output) <= limit_of(registry, name), name
        assert 0 < output[f"{found}_count"] == len(output[found]) < 2000
        assert output["truncated"] is True
        assert output[found][0]["path"] == "big.txt" and output[found][0]["line"] == 1


async def test_find_references_takes_max_results_as_an_alias(ws: Workspace) -> None:
    write(ws.root, {"a.py": "def thing():\n    pass\n\nthing()\nthing()\n"})
    assert (await ws.ok("repo.find_references", {"symbol": "thing"}))["references_count"] == 3
    capped = await ws.ok("repo.find_references", {"symbol": "thing", "max_results": 1})
    assert capped["references_count"] == 1 and capped["truncated"] is True
    both = {"symbol": "thing", "max_references": 2, "max_results": 1}
    assert (await ws.ok("repo.find_references", both))["references_count"] == 2


def test_encoded_size_is_what_the_executor_measures() -> None:
    assert encoded_size({"a": "\x01"}) == compact({"a": "\x01"})
