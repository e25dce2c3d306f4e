"""Parsers of toolchain output (serve_app/tools/toolchain_output.py, git_status.py and the
declarations of repo_search.py) on text the real tools print, for the formats the toolchains on
this machine cannot produce in the other tests (tsc, eslint, jest, Maven, Gradle, Java, older
rustc)."""

from __future__ import annotations

from pathlib import Path

import pytest

from serve_app.domain.errors import ServiceError
from serve_app.tools import git_status, go, repo_search, toolchain_output
from serve_app.tools.fitting import TRUNCATION_NOTE, encoded_size
from serve_app.tools.fitting import fit_command_result as fitted
from serve_app.tools.languages import Completed, LanguageTestOutput, failures

ROOT = Path("/work/ws/repo")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "main.c:3:5: error: expected ';' before 'return'",
            "main.c:3:5: error: expected ';' before 'return'",
        ),
        ("/work/ws/repo/src/x.c:10:1: warning: no newline", "src/x.c:10:1: warning: no newline"),
        ("./calc.go:7:2: undefined: foo", "calc.go:7:2: error: undefined: foo"),
        ("vet: ./calc.go:9:14: unreachable code", "calc.go:9:14: error: unreachable code"),
        ("src/a.ts(3,7): error TS2322: Bad type", "src/a.ts:3:7: error: TS2322: Bad type"),
        ("src/a.ts:3:7 - error TS2304: No name", "src/a.ts:3:7: error: TS2304: No name"),
        ("pkg/mod.py:1:8: F401 `os` imported", "pkg/mod.py:1:8: error: F401 `os` imported"),
        ("    calc_test.go:13: got 2, want 5", "calc_test.go:13: error: got 2, want 5"),
    ],
)  # fmt: skip
def test_single_line_diagnostics(line: str, expected: str) -> None:
    assert toolchain_output.diagnostics(line + "\n", 10, ROOT) == [expected]


def test_rustc_and_python_multi_line_diagnostics() -> None:
    rustc = (
        "warning: unused variable: `x`\n"
        " --> src/lib.rs:2:9\n"
        "  |\n"
        "error[E0308]: mismatched types\n"
        "  --> src/main.rs:4:18\n"
        "error: could not compile `calc` (lib) due to 1 previous error\n"
    )
    assert toolchain_output.diagnostics(rustc, 10) == [
        "src/lib.rs:2:9: warning: unused variable: `x`",
        "src/main.rs:4:18: error: [E0308] mismatched types",
    ]
    python = (
        '  File "/work/ws/repo/pkg/bad.py", line 4\n'
        "    x = (\n"
        "        ^\n"
        "SyntaxError: '(' was never closed\n"
    )
    assert toolchain_output.diagnostics(python, 10, ROOT) == [
        "pkg/bad.py:4: error: SyntaxError: '(' was never closed"
    ]


def test_lines_that_only_look_like_locations_are_not_diagnostics() -> None:
    noise = (
        "2026-11-27 12:30:45: started\n"
        "ok  \texample.com/calc\t0.002s\n"
        "  location: '/x/test/a.test.js:4:1'\n"
        "http://example.com:8080: refused\n"
    )
    assert toolchain_output.diagnostics(noise, 10) == []


def test_diagnostics_are_deduplicated_and_capped() -> None:
    text = "a.c:1:1: error: x\n" * 3 + "b.c:2:2: error: y\nc.c:3:3: error: z\n"
    assert toolchain_output.diagnostics(text, 2) == ["a.c:1:1: error: x", "b.c:2:2: error: y"]


def test_failed_tests_in_every_runner_format() -> None:
    output = "\n".join(
        [
            "--- FAIL: TestCreate (0.00s)",
            "    --- FAIL: TestCreate/empty_name (0.00s)",
            "FAIL\tgithub.com/acme/todo\t0.012s",
            "FAIL\tgithub.com/acme/broken [build failed]",
            "FAILED tests/test_api.py::test_get - assert 404 == 200",
            "ERROR tests/test_db.py::test_connect - ConnectionError",
            "test tests::parses ... FAILED",
            "not ok 3 - rejects empty input",
            "    not ok 1 - nested case",
            "not ok 4 - later # TODO not written",
            "not ok 5 - skipped one # SKIP no network",
            "  \u2715 renders the header (12 ms)",
            "FAIL src/App.test.tsx",
            "./tests/calc_test.c:14:test_sub:FAIL: expected 5",
            "[ERROR] com.acme.TodoTest.create  Time elapsed: 0.01 s  <<< FAILURE!",
            "TodoTest > createsTodo() FAILED",
            "--- FAIL: TestCreate (0.00s)",
        ]
    )
    assert [(f["kind"], f["name"]) for f in toolchain_output.failed_tests(output, 100)] == [
        ("go", "TestCreate"),
        ("go", "TestCreate/empty_name"),
        ("package", "github.com/acme/todo"),
        ("package", "github.com/acme/broken"),
        ("python", "tests/test_api.py::test_get"),
        ("python_error", "tests/test_db.py::test_connect"),
        ("rust", "tests::parses"),
        ("tap", "rejects empty input"),
        ("tap", "nested case"),
        ("node", "renders the header"),
        ("node", "src/App.test.tsx"),
        ("c", "test_sub"),
        ("java", "com.acme.TodoTest.create"),
        ("java", "TodoTest > createsTodo()"),
    ]
    assert len(toolchain_output.failed_tests(output, 3)) == 3


def test_java_exception_go_fatal_error_and_several_traces() -> None:
    text = (
        'Exception in thread "main" java.lang.IllegalStateException: not ready\n'
        "\tat com.acme.App.start(App.java:42)\n"
        "\tat com.acme.App.main(App.java:10)\n"
        "Caused by: java.io.IOException: closed\n"
        "\tat com.acme.Io.read(Io.java:7)\n"
        "\t... 2 more\n"
        "\n"
        "fatal error: all goroutines are asleep - deadlock!\n"
        "\n"
        "goroutine 1 [chan receive]:\n"
        "main.main()\n"
        "\t/app/main.go:5 +0x25\n"
        "\n"
        "thread 'worker' panicked at 'called `Option::unwrap()` on a `None` value', src/w.rs:9:14\n"
    )
    traces = toolchain_output.stacktraces(text, 10, 20)
    assert [(t["type"], t["message"]) for t in traces] == [
        ("java_exception", "java.lang.IllegalStateException: not ready"),
        ("fatal_error", "all goroutines are asleep - deadlock!"),
        ("rust_panic", "called `Option::unwrap()` on a `None` value"),
    ]
    assert traces[0]["frames"] == [
        "com.acme.App.start(App.java:42)",
        "com.acme.App.main(App.java:10)",
        "com.acme.Io.read(Io.java:7)",
    ]
    assert traces[1]["frames"] == ["main.main() at /app/main.go:5"]
    assert traces[2]["frames"] == ["src/w.rs:9:14"]
    assert len(toolchain_output.stacktraces(text, 1, 20)) == 1
    assert toolchain_output.stacktraces("all good\n", 10, 20) == []


def test_coverage_totals() -> None:
    func = "example.com/calc/calc.go:3:\tAdd\t100.0%\ntotal:\t\t\t(statements)\t62.5%\n"
    assert toolchain_output.go_coverage(func) == 62.5
    per_package = (
        "ok  \ta\t0.1s\tcoverage: 50.0% of statements\n"
        "ok  \tb\t0.1s\tcoverage: 100.0% of statements\n"
    )
    assert toolchain_output.go_coverage("", per_package) == 75.0
    assert toolchain_output.go_coverage("", "no test files") is None
    pytest_cov = "Name  Stmts  Miss  Cover\n---\ncalc.py  4  1  75%\nTOTAL  4  1  75%\n"
    assert toolchain_output.pytest_coverage(pytest_cov) == 75.0
    assert toolchain_output.pytest_coverage("3 passed") is None


def test_git_status_records() -> None:
    status = " M a.txt\0R  new.txt\0old.txt\0?? dir/u.txt\0D  gone.txt\0"
    entries = git_status.parse_status_z(status)
    assert [(e["path"], e["status"], e["renamed_from"]) for e in entries] == [
        ("a.txt", "modified", ""),
        ("new.txt", "renamed", "old.txt"),
        ("dir/u.txt", "untracked", ""),
        ("gone.txt", "deleted", ""),
    ]
    assert entries[0]["unstaged"] and not entries[0]["staged"]
    assert entries[1]["staged"] and not entries[1]["unstaged"]
    diff = git_status.parse_name_status_z("M\0a b.txt\0R090\0x.go\0y.go\0A\0z\0")
    assert [(e["path"], e["status"], e["renamed_from"]) for e in diff] == [
        ("a b.txt", "modified", ""),
        ("y.go", "renamed", "x.go"),
        ("z", "added", ""),
    ]
    mode, quoted = git_status.parse_status_text('?? "sp\\303\\251cial.txt"\n')
    assert mode == "working_tree" and quoted[0]["path"] == "sp\u00e9cial.txt"


@pytest.mark.parametrize(
    ("snippet", "symbol", "declaration"),
    [
        ("func (s *Server) Handle(w http.ResponseWriter) {", "Handle", True),
        ("type Todo struct {", "Todo", True),
        ("todo := NewTodo()", "todo", True),
        ("pub(crate) fn parse(input: &str) -> Ast {", "parse", True),
        ("export default class Store {", "Store", True),
        ("async def fetch(url):", "fetch", True),
        ("static inline int clamp(int v) {", "clamp", True),
        ("#define MAX_ITEMS 10", "MAX_ITEMS", True),
        ("    return clamp(v);", "clamp", False),
        ("    assert fetch(url) == 1", "fetch", False),
        ("x = parse(text)", "parse", False),
        ("if todo == nil {", "todo", False),
        ("int total = clamp(3);", "clamp", False),
    ],
)
def test_declarations(snippet: str, symbol: str, declaration: bool) -> None:
    assert repo_search.is_declaration(snippet, symbol, True) is declaration


def test_go_ldflags_and_run_patterns() -> None:
    assert go.checked_ldflags("-s -w -X main.version=1.2.3") == [
        "-s",
        "-w",
        "-X",
        "main.version=1.2.3",
    ]
    for bad in ("-extldflags=-static", "-X", "-linkmode external", "-X a=$(id)"):
        with pytest.raises(ServiceError):
            go.checked_ldflags(bad)
    assert go.checked_run_pattern(" TestA|TestB ") == "TestA|TestB"
    with pytest.raises(ServiceError):
        go.checked_run_pattern("Test\nX")


def test_parsers_stay_linear_on_huge_lines() -> None:
    """Output is untrusted: a 1 MB line (quadratic backtracking would take hours) is skipped or
    scanned in one pass."""
    huge = "a" * 1_000_000
    text = f"{huge}\nnot ok 1 - x{' ' * 1_000_000}y\nmain.c:1:1: error: after\n"
    assert toolchain_output.diagnostics(text, 10) == ["main.c:1:1: error: after"]
    assert toolchain_output.failed_tests(text, 10) == []
    assert toolchain_output.stacktraces(text, 10, 10) == []


def test_language_output_is_fitted_to_the_output_limit() -> None:
    """Diagnostics, failed tests and the command's text together stay within the tool's limit,
    however much JSON escaping the text needs (control characters take six bytes each)."""
    limit = 64 * 1024
    noise = "\x01" * 200
    text = "".join(
        f"m.c:{n}:1: error: {noise}\nFAILED t.py::test_{n} - {noise}\n" for n in range(400)
    )
    run = Completed(["cc"], 1, text, False, [])
    output = LanguageTestOutput(
        exit_code=1,
        compiled_binary_path="",
        coverage_percent=None,
        diagnostics=toolchain_output.diagnostics(text, 80),
        command=run.command,
        output=text,
        **failures(run),
    )
    assert encoded_size(output.dump()) > limit
    fitted(output, limit)
    assert encoded_size(output.dump()) <= limit
    assert 0 < len(output.diagnostics) < 80 and 0 < len(output.failed_tests) < 200
    assert output.failed_count == 200
    assert output.output.startswith("m.c:0:1: error: ") and output.output.endswith(TRUNCATION_NOTE)
    small = LanguageTestOutput(
        **{**output.dump(), "output": "ok\n", "diagnostics": [], "failed_tests": []}
    )
    assert fitted(small, limit).output == "ok\n"
