"""repo.* behaviour that does not depend on one language: detection order, the outcome rule,
changed files from real git, symbol search and references through real grep, the catalog's
contract metadata and the policy engine's view of `extra_args`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from serve_app.domain.capability import ArgField, PathField, RiskLevel, SideEffects
from serve_app.domain.errors import ErrorCode
from serve_app.domain.policy import evaluate
from serve_app.execution.executor import ExecutionService
from serve_app.tools import ToolRegistry, build_registry
from serve_app.tools.projects import Project
from serve_app.tools.repo import NO_PROJECT
from tests.conftest import invoke, open_session
from tests.support.processes import none_left_with_argument, unique_seconds
from tests.support.projects import (
    Workspace,
    c_project,
    commit_all,
    git,
    make_session,
    new_workspace,
    python_project,
    service_python_first,
    write,
)

SHELL_DENY = [";", "|", "&", "`", "$(", ">", "<", "\n", "\r"]


@pytest.fixture
def registry() -> ToolRegistry:
    return build_registry()


@pytest.fixture
def ws(tmp_path: Path, registry: ToolRegistry) -> Iterator[Workspace]:
    executor = ExecutionService(registry)
    yield Workspace(new_workspace(tmp_path), registry, executor)
    executor.close()


# detection --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (["go.mod", "Cargo.toml", "package.json"], Project("go", "go")),
        (["Cargo.toml", "package.json", "pyproject.toml"], Project("rust", "cargo")),
        (["package.json", "tsconfig.json", "requirements.txt"], Project("node", "typescript")),
        (["package.json", "pom.xml"], Project("node", "npm")),
        (["pyproject.toml", "pom.xml"], Project("python", "pytest")),
        (["pytest.ini"], Project("python", "pytest")),
        (["requirements.txt", "build.gradle"], Project("python", "pytest")),
        (["mvnw", "build.gradle"], Project("java", "maven")),
        (["pom.xml"], Project("java", "maven")),
        (["gradlew"], Project("java", "gradle")),
        (["build.gradle.kts", "main.c"], Project("java", "gradle")),
        (["CMakeLists.txt"], Project("c", "cc")),
        (["src/lib/util.c"], Project("c", "cc")),
        (["a/b/c/deep.c"], Project("unknown", "")),
        (["node_modules/dep/x.c"], Project("unknown", "")),
        (["README.md"], Project("unknown", "")),
        ([], Project("unknown", "")),
    ],
)
async def test_detection_follows_the_contract_order(
    ws: Workspace, files: list[str], expected: Project
) -> None:
    for name in files:
        (ws.root / name).parent.mkdir(parents=True, exist_ok=True)
        (ws.root / name).write_text("")
    detected = await ws.ok("repo.detect_project_type")
    assert Project(detected["project_type"], detected["flavor"]) == expected


async def test_a_directory_named_like_a_marker_is_not_a_marker(ws: Workspace) -> None:
    (ws.root / "go.mod").mkdir()
    detected = await ws.ok("repo.detect_project_type")
    assert Project(detected["project_type"], detected["flavor"]) == Project("unknown", "")


async def test_tools_that_need_a_project_fail_without_one(ws: Workspace) -> None:
    assert await ws.ok("repo.detect_project_type") == {"project_type": "unknown", "flavor": ""}
    toolchain = await ws.ok("repo.detect_toolchain")
    assert toolchain["language"] == "unknown" and toolchain["toolchain_available"] is False
    for tool in ("repo.build", "repo.test", "repo.validate", "repo.package"):
        result = await ws.fails(tool, {}, ErrorCode.EXECUTION_FAILED)
        assert result.error is not None and result.error.message == NO_PROJECT


async def test_a_missing_toolchain_fails_the_invocation(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    c_project(ws.root)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    result = await ws.fails("repo.build", {}, ErrorCode.EXECUTION_FAILED)
    assert result.exit_code == 127
    assert result.error is not None and "c toolchain not installed" in result.error.message
    assert result.output["exit_code"] == 127 and result.output["command"][0] == "cc"


async def test_a_test_run_past_the_deadline_is_a_timeout(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    service_python_first(monkeypatch)
    python_project(ws.root, failing=False)
    seconds = unique_seconds(60)
    write(
        ws.root,
        {
            "tests/test_slow.py": f"""
                import subprocess


                def test_slow():
                    subprocess.run(["sleep", "{seconds}"])
            """
        },
    )
    result = await ws.call("repo.test", {"target": "tests/test_slow.py"}, timeout=4)
    assert result.error is not None and result.error.code == ErrorCode.TIMEOUT
    assert result.exit_code == 124
    assert await none_left_with_argument(seconds), "the test's child survived the timeout"


# changed files ----------------------------------------------------------------------------------


def _changed(output: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {
        entry["path"]: (entry["status"], entry["renamed_from"]) for entry in output["changed_files"]
    }


async def test_changed_files_in_the_working_tree(ws: Workspace) -> None:
    write(ws.root, {"a.txt": "a\n", "b.txt": "b\n", "old.txt": "o\n", "src/c.txt": "c\n"})
    commit_all(ws.root)
    write(ws.root, {"a.txt": "changed\n", "new/untracked.txt": "u\n", "staged.txt": "s\n"})
    (ws.root / "b.txt").unlink()
    git(ws.root, "add", "staged.txt")
    git(ws.root, "mv", "old.txt", "renamed.txt")
    output = await ws.ok("repo.changed_files")
    assert output["source"] == "git" and output["mode"] == "working_tree"
    assert output["command"][:3] == [
        "git",
        f"--git-dir={os.path.realpath(ws.root)}/.git",
        f"--work-tree={os.path.realpath(ws.root)}",
    ]
    assert "--literal-pathspecs" in output["command"]
    assert _changed(output) == {
        "a.txt": ("modified", ""),
        "b.txt": ("deleted", ""),
        "new/untracked.txt": ("untracked", ""),
        "renamed.txt": ("renamed", "old.txt"),
        "staged.txt": ("added", ""),
    }
    staged = next(e for e in output["changed_files"] if e["path"] == "staged.txt")
    assert staged["staged"] is True and staged["unstaged"] is False
    assert [e["path"] for e in output["changed_files"]] == sorted(_changed(output))
    tracked = await ws.ok("repo.changed_files", {"include_untracked": False, "max_files": 2})
    assert [e["path"] for e in tracked["changed_files"]] == ["a.txt", "b.txt"]
    assert tracked["truncated"] is True and tracked["changed_count"] == 2
    scoped = await ws.ok("repo.changed_files", {"path": "new"})
    assert list(_changed(scoped)) == ["new/untracked.txt"]


async def test_changed_files_against_a_base_ref(ws: Workspace) -> None:
    write(ws.root, {"a.txt": "a\n", "keep.txt": "k\n"})
    commit_all(ws.root)
    git(ws.root, "checkout", "-q", "-b", "feature")
    write(ws.root, {"a.txt": "feature\n", "added.txt": "x\n"})
    commit_all(ws.root, "feature work")
    output = await ws.ok("repo.changed_files", {"base_ref": "main"})
    assert output["mode"] == "base_ref_diff" and output["base_ref"] == "main"
    assert _changed(output) == {"a.txt": ("modified", ""), "added.txt": ("added", "")}
    await ws.fails("repo.changed_files", {"base_ref": "no-such-ref"}, ErrorCode.GIT_REPO_ERROR)
    await ws.fails("repo.changed_files", {"base_ref": "--output=x"}, ErrorCode.POLICY_DENIED)
    assert not (ws.root / "x").exists()


async def test_changed_files_outside_a_repository_or_the_jail(ws: Workspace) -> None:
    result = await ws.fails("repo.changed_files", {}, ErrorCode.GIT_REPO_ERROR)
    assert result.exit_code == 128
    await ws.fails("repo.changed_files", {"path": "../.."}, ErrorCode.POLICY_DENIED)


async def test_changed_files_from_provided_output(ws: Workspace) -> None:
    porcelain = " M src/a.go\n?? notes.txt\nR  old.go -> new.go\nD  gone.go\n"
    output = await ws.ok("repo.changed_files", {"output": porcelain})
    assert output["source"] == "provided_output" and output["mode"] == "working_tree"
    assert _changed(output) == {
        "gone.go": ("deleted", ""),
        "new.go": ("renamed", "old.go"),
        "notes.txt": ("untracked", ""),
        "src/a.go": ("modified", ""),
    }
    scoped = await ws.ok("repo.changed_files", {"output": porcelain, "path": "src"})
    assert list(_changed(scoped)) == ["src/a.go"]
    name_status = await ws.ok(
        "repo.changed_files", {"output": "M\tsrc/a.go\nR087\told.go\tnew.go\nA\tdocs/x.md"}
    )
    assert name_status["mode"] == "base_ref_diff"
    assert _changed(name_status) == {
        "docs/x.md": ("added", ""),
        "new.go": ("renamed", "old.go"),
        "src/a.go": ("modified", ""),
    }


# symbol search / references ---------------------------------------------------------------------

SOURCES = {
    "calc.go": "package calc\n\nfunc CreateTodo(name string) Todo {\n\treturn Todo{name}\n}\n",
    "app/main.go": 'package main\n\nfunc main() {\n\tt := calc.CreateTodo("x")\n\t_ = t\n}\n',
    "todo.py": "class Todo:\n    pass\n\n\ndef create_todo():\n    return Todo()\n",
    "todo.c": "struct todo;\nint create_todo(int id) {\n  return id;\n}\nint x = create_todo(1);\n",
    "web/todo.js": "export function createTodo() {}\nconst todo = createTodo();\n",
    "NOTES.md": "createtodo in lower case, CreateTodoList is longer\n",
}


async def test_symbol_search(ws: Workspace, tmp_path: Path) -> None:
    write(ws.root, SOURCES)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.go").write_text("func CreateTodo() {}\n")
    (ws.root / "linked").symlink_to(outside)
    write(ws.root, {".git/HEAD": "CreateTodo\n"})
    found = await ws.ok("repo.symbol_search", {"symbol": "CreateTodo"})
    assert found["command"][-3:] == ["--", "CreateTodo", "."]
    assert [(m["path"], m["line"], m["column"]) for m in found["matches"]] == [
        ("NOTES.md", 1, 27),
        ("app/main.go", 4, 12),
        ("calc.go", 3, 6),
    ]
    assert found["matches"][2]["snippet"] == "func CreateTodo(name string) Todo {"
    word = await ws.ok("repo.symbol_search", {"symbol": "CreateTodo", "whole_word": True})
    assert [m["path"] for m in word["matches"]] == ["app/main.go", "calc.go"]
    insensitive = await ws.ok(
        "repo.symbol_search", {"symbol": "createtodo", "case_sensitive": False, "path": "web"}
    )
    assert [(m["path"], m["line"]) for m in insensitive["matches"]] == [
        ("web/todo.js", 1),
        ("web/todo.js", 2),
    ]
    regex = await ws.ok(
        "repo.symbol_search", {"symbol": "^(class|def) [A-Za-z_]+", "use_regex": True}
    )
    assert [(m["path"], m["line"]) for m in regex["matches"]] == [("todo.py", 1), ("todo.py", 5)]
    capped = await ws.ok("repo.symbol_search", {"symbol": "todo", "max_results": 2})
    assert capped["matches_count"] == 2 and capped["truncated"] is True
    none = await ws.ok("repo.symbol_search", {"symbol": "--no-such-symbol"})
    assert none["matches"] == [] and none["exit_code"] == 1
    await ws.fails(
        "repo.symbol_search", {"symbol": "(unclosed", "use_regex": True}, ErrorCode.INVALID_ARGUMENT
    )
    await ws.fails("repo.symbol_search", {"symbol": "x", "path": "../.."}, ErrorCode.POLICY_DENIED)
    await ws.fails("repo.symbol_search", {"symbol": "x", "path": "linked"}, ErrorCode.POLICY_DENIED)
    await ws.fails("repo.symbol_search", {"symbol": "x", "path": "nope"}, ErrorCode.NOT_FOUND)


async def test_find_references_tags_declarations(ws: Workspace) -> None:
    write(ws.root, SOURCES)
    go = await ws.ok("repo.find_references", {"symbol": "CreateTodo"})
    assert [(r["path"], r["line"], r["is_declaration"]) for r in go["references"]] == [
        ("app/main.go", 4, False),
        ("calc.go", 3, True),
    ]
    assert go["declaration_count"] == 1 and go["references_count"] == 2
    c = await ws.ok("repo.find_references", {"symbol": "create_todo"})
    assert [(r["path"], r["line"], r["is_declaration"]) for r in c["references"]] == [
        ("todo.c", 2, True),
        ("todo.c", 5, False),
        ("todo.py", 5, True),
    ]
    uses = await ws.ok(
        "repo.find_references", {"symbol": "Todo", "include_declarations": False, "path": "todo.py"}
    )
    assert [(r["line"], r["is_declaration"]) for r in uses["references"]] == [(6, False)]
    assert uses["declaration_count"] == 1
    js = await ws.ok("repo.find_references", {"symbol": "createTodo", "max_results": 1})
    assert js["references"][0]["is_declaration"] is True and js["truncated"] is True


# catalog metadata (contract §4.2) ----------------------------------------------------------------

_EXTRA = "extra_args"
CONTRACT: dict[str, tuple[str, bool, str, str, int, int, list[str]]] = {
    "repo.detect_project_type": ("low", False, "none", "guaranteed", 15, 64, []),
    "repo.detect_toolchain": ("low", False, "none", "guaranteed", 20, 64, []),
    "repo.validate": ("medium", False, "reversible", "best-effort", 180, 2048, ["target"]),
    "repo.build": ("medium", False, "reversible", "best-effort", 240, 2048, ["target", _EXTRA]),
    "repo.test": ("medium", False, "reversible", "best-effort", 180, 2048, ["target", _EXTRA]),
    "repo.run_tests": ("medium", False, "reversible", "best-effort", 180, 2048, ["target", _EXTRA]),
    "repo.test_failures_summary": (
        "low", False, "reversible", "best-effort", 180, 1024,
        ["output", "target", _EXTRA, "max_failures", "max_diagnostics"],
    ),
    "repo.stacktrace_summary": (
        "low", False, "reversible", "best-effort", 180, 1024,
        ["output", "target", _EXTRA, "max_traces", "max_frames"],
    ),
    "repo.changed_files": (
        "low", False, "none", "best-effort", 90, 1024,
        ["base_ref", "path", "max_files", "include_untracked", "output"],
    ),
    "repo.symbol_search": (
        "low", False, "none", "best-effort", 120, 1024,
        ["symbol", "path", "max_results", "case_sensitive", "whole_word", "use_regex"],
    ),
    "repo.find_references": (
        "low", False, "none", "best-effort", 120, 1024,
        ["symbol", "path", "max_references", "max_results", "case_sensitive",
         "include_declarations"],
    ),
    "repo.coverage_report": ("medium", False, "reversible", "best-effort", 240, 2048, ["target"]),
    "repo.static_analysis": ("low", False, "none", "best-effort", 180, 2048, ["target"]),
    "repo.package": ("medium", False, "reversible", "best-effort", 300, 2048, ["target"]),
    "go.mod.tidy": ("medium", False, "reversible", "best-effort", 180, 1024, ["check"]),
    "go.generate": ("medium", False, "reversible", "best-effort", 180, 1024, ["target"]),
    "go.build": (
        "medium", False, "reversible", "best-effort", 300, 2048,
        ["target", "ldflags", "output_name", "race"],
    ),
    "go.test": (
        "medium", False, "reversible", "best-effort", 300, 2048,
        ["package", "coverage", "run_pattern"],
    ),
    "rust.build": ("medium", False, "reversible", "best-effort", 300, 2048, ["target", "release"]),
    "rust.test": ("medium", False, "reversible", "best-effort", 300, 2048, ["target"]),
    "rust.clippy": ("medium", False, "reversible", "best-effort", 300, 2048, ["deny_warnings"]),
    "rust.format": ("low", False, "reversible", "best-effort", 180, 1024, ["check"]),
    "node.install": (
        "medium", False, "reversible", "best-effort", 300, 2048, ["use_ci", "ignore_scripts"]
    ),
    "node.build": ("medium", False, "reversible", "best-effort", 300, 2048, ["target"]),
    "node.test": ("medium", False, "reversible", "best-effort", 300, 2048, ["target"]),
    "node.lint": ("medium", False, "reversible", "best-effort", 240, 2048, ["target"]),
    "node.typecheck": ("medium", False, "reversible", "best-effort", 240, 2048, ["target"]),
    "python.install_deps": (
        "medium", False, "reversible", "best-effort", 300, 2048,
        ["use_venv", "requirements_file", "constraints_file"],
    ),
    "python.validate": ("low", False, "none", "guaranteed", 180, 1024, ["target"]),
    "python.test": (
        "medium", False, "reversible", "best-effort", 300, 2048,
        ["target", "run_pattern", "max_fail"],
    ),
    "c.build": (
        "medium", False, "reversible", "best-effort", 180, 1024,
        ["source", "output_name", "standard"],
    ),
    "c.test": (
        "medium", False, "reversible", "best-effort", 180, 2048,
        ["source", "output_name", "standard", "run"],
    ),
}  # fmt: skip
PATH_FIELDS = {
    "repo.changed_files": ["path"],
    "repo.symbol_search": ["path"],
    "repo.find_references": ["path"],
    "node.build": ["target"],
    "node.test": ["target"],
    "node.lint": ["target"],
    "node.typecheck": ["target"],
    "python.install_deps": ["requirements_file", "constraints_file"],
    "python.validate": ["target"],
    "python.test": ["target"],
    "c.build": ["source"],
    "c.test": ["source"],
}
RANGES = {
    ("repo.test_failures_summary", "max_failures"): (1, 200),
    ("repo.test_failures_summary", "max_diagnostics"): (1, 200),
    ("repo.stacktrace_summary", "max_traces"): (1, 50),
    ("repo.stacktrace_summary", "max_frames"): (1, 80),
    ("repo.changed_files", "max_files"): (1, 2000),
    ("repo.symbol_search", "max_results"): (1, 2000),
    ("repo.find_references", "max_references"): (1, 2000),
    ("repo.find_references", "max_results"): (1, 2000),
    ("python.test", "max_fail"): (1, 20),
}


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_catalog_keeps_the_contract_metadata(registry: ToolRegistry, name: str) -> None:
    tool = registry.get(name)
    assert tool is not None
    capability = tool.capability
    risk, approval, side_effects, idempotency, timeout, output_kb, arguments = CONTRACT[name]
    assert capability.scope == "repo"
    assert capability.risk_level == RiskLevel(risk)
    assert capability.requires_approval is approval
    assert capability.side_effects == SideEffects(side_effects)
    assert capability.idempotency == idempotency
    assert capability.constraints.timeout_seconds == timeout
    assert capability.constraints.output_limit_kb == output_kb
    assert list(capability.input_schema["properties"]) == arguments
    required = ["symbol"] if name in ("repo.symbol_search", "repo.find_references") else []
    assert capability.input_schema["required"] == required
    assert capability.policy.path_fields == [
        PathField(field=field) for field in PATH_FIELDS.get(name, [])
    ]
    for (tool_name, argument), (low, high) in RANGES.items():
        if tool_name == name:
            spec = capability.input_schema["properties"][argument]
            assert (spec["minimum"], spec["maximum"]) == (low, high)
    assert capability.constraints.timeout_seconds <= 600


def test_policy_metadata_of_argument_fields(registry: ToolRegistry) -> None:
    for name in ("repo.build", "repo.test", "repo.run_tests", "repo.test_failures_summary",
                 "repo.stacktrace_summary"):  # fmt: skip
        [extra] = registry.get(name).capability.policy.arg_fields  # type: ignore[union-attr]
        assert (extra.field, extra.multi, extra.max_items, extra.max_length) == (
            "extra_args",
            True,
            8,
            64,
        )
        assert extra.deny_characters == SHELL_DENY
        assert extra.allowed_prefix and "-run=" in extra.allowed_prefix
        assert extra.denied_prefix and "-toolexec" in extra.denied_prefix
    build = registry.get("repo.build").capability.policy.arg_fields[0]  # type: ignore[union-attr]
    assert build.allowed_prefix is not None and "-trimpath" in build.allowed_prefix
    changed = registry.get("repo.changed_files").capability.policy.arg_fields  # type: ignore[union-attr]
    assert changed == [ArgField(field="base_ref", max_length=120, deny_characters=SHELL_DENY)]
    for name in ("repo.symbol_search", "repo.find_references"):
        [symbol] = registry.get(name).capability.policy.arg_fields  # type: ignore[union-attr]
        assert (symbol.field, symbol.max_length, symbol.deny_characters) == (
            "symbol",
            160,
            ["\x00", "\n", "\r"],
        )


@pytest.mark.parametrize(
    ("extra_args", "allowed"),
    [
        (["-run=TestAdd", "-count=1", "-v"], True),
        (["--features=broken", "--offline"], True),
        (["--maxfail=2", "-q"], True),
        (["-toolexec=x"], False),
        (["-mod=mod"], False),
        (["-run=$(id)"], False),
        (["./..."], False),
        (["-v"] * 9, False),
        (["-run=" + "x" * 64], False),
    ],
)
def test_policy_engine_applies_the_extra_args_metadata(
    registry: ToolRegistry, tmp_path: Path, extra_args: list[str], allowed: bool
) -> None:
    capability = registry.get("repo.test").capability  # type: ignore[union-attr]
    decision = evaluate(capability, make_session(tmp_path), {"extra_args": extra_args}, False)
    assert decision.allowed is allowed, decision.reason


# through the HTTP API ---------------------------------------------------------------------------


def test_outcomes_through_the_http_api(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failing test run is a succeeded invocation carrying exit code 1 and the failure; a
    refused flag is a 403 before anything runs; a missing toolchain is a failed invocation."""
    service_python_first(monkeypatch)
    source = python_project(tmp_path / "source")
    session = open_session(client, source_repo_path=str(source))
    status, body = invoke(client, session["id"], "repo.test", {})
    assert status == 200, body
    invocation = body["invocation"]
    assert (invocation["status"], invocation["exit_code"]) == ("succeeded", 1)
    assert invocation["output"]["failed_tests"][0]["name"] == (
        "tests/test_divide.py::test_divide_broken"
    )
    status, body = invoke(client, session["id"], "repo.test", {"extra_args": ["-toolexec=x"]})
    assert (status, body["error"]["code"]) == (403, "policy_denied")
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    status, body = invoke(client, session["id"], "repo.test", {})
    assert (status, body["error"]["code"]) == (500, "execution_failed")
    assert body["invocation"]["status"] == "failed" and body["invocation"]["exit_code"] == 127
