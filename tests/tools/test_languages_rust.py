"""repo.* and rust.* on a real cargo crate (no dependencies), run by the real cargo; and the
child environment that lets rustup's cargo proxy find its toolchains under a per-session HOME."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from serve_app.domain.errors import ErrorCode
from serve_app.execution.executor import ExecutionService
from serve_app.execution.process import child_environment
from serve_app.tools import build_registry
from tests.support.projects import Workspace, cargo_crate, new_workspace, requires, write

RUST_PANIC = """\
thread 'main' panicked at src/main.rs:4:5:
index out of bounds: the len is 3 but the index is 5
stack backtrace:
   0: rust_begin_unwind
   1: calc::lookup
             at ./src/main.rs:4:5
   2: calc::main
             at ./src/main.rs:8:5
note: Some details are omitted, run with `RUST_BACKTRACE=full` for a verbose backtrace.
"""


def test_child_environment_finds_rustup_under_the_service_home(tmp_path: Path) -> None:
    service_home = tmp_path / "service"
    (service_home / ".rustup").mkdir(parents=True)
    env = child_environment(
        home=tmp_path / "session-home",
        workspace=tmp_path / "repo",
        service_env={"PATH": "/usr/bin", "HOME": str(service_home)},
    )
    assert env["HOME"] == str(tmp_path / "session-home")
    assert env["RUSTUP_HOME"] == str(service_home / ".rustup")
    assert env["RUSTUP_AUTO_INSTALL"] == "0"
    assert "CARGO_HOME" not in env


def test_child_environment_keeps_an_explicit_rustup_home_and_adds_none_without_one(
    tmp_path: Path,
) -> None:
    (tmp_path / ".rustup").mkdir()
    explicit = child_environment(
        home=tmp_path / "h",
        workspace=tmp_path / "w",
        service_env={"HOME": str(tmp_path), "RUSTUP_HOME": "/opt/rustup", "CARGO_HOME": "/opt/c"},
    )
    assert explicit["RUSTUP_HOME"] == "/opt/rustup" and explicit["CARGO_HOME"] == "/opt/c"
    assert "RUSTUP_AUTO_INSTALL" not in explicit
    without = child_environment(
        home=tmp_path / "h", workspace=tmp_path / "w", service_env={"HOME": str(tmp_path / "x")}
    )
    assert "RUSTUP_HOME" not in without
    allowed = child_environment(
        home=tmp_path / "h",
        workspace=tmp_path / "w",
        service_env={"HOME": str(tmp_path), "RUSTUP_AUTO_INSTALL": "1"},
    )
    assert allowed["RUSTUP_HOME"] == str(tmp_path / ".rustup")
    assert allowed["RUSTUP_AUTO_INSTALL"] == "1"


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    registry = build_registry()
    executor = ExecutionService(registry)
    yield Workspace(cargo_crate(new_workspace(tmp_path)), registry, executor)
    executor.close()


@requires("cargo", "cargo")
async def test_rust_project_end_to_end(ws: Workspace) -> None:
    assert await ws.ok("repo.detect_project_type") == {"project_type": "rust", "flavor": "cargo"}
    toolchain = await ws.ok("repo.detect_toolchain")
    assert (toolchain["build_system"], toolchain["test_framework"]) == ("cargo", "cargo test")

    built = await ws.ok("rust.build")
    assert built["exit_code"] == 0, built["output"]
    assert built["compiled_binary_path"] == "target/debug/calc"
    assert (ws.root / "target" / "debug" / "calc").is_file()

    passing = await ws.ok("repo.test", {"extra_args": ["--offline"]})
    assert passing["exit_code"] == 0, passing["output"]
    assert "test tests::adds_numbers ... ok" in passing["output"]

    failing = await ws.ok("repo.test", {"extra_args": ["--offline", "--features=broken"]})
    assert failing["exit_code"] == 101
    assert [(f["name"], f["kind"]) for f in failing["failed_tests"]] == [
        ("tests::subtracts_numbers", "rust")
    ]
    summary = await ws.ok("repo.test_failures_summary", {"extra_args": ["--features", "broken"]})
    assert summary["failed_tests"][0]["name"] == "tests::subtracts_numbers"
    traces = await ws.ok(
        "repo.stacktrace_summary", {"extra_args": ["--offline", "--features=broken"]}
    )
    assert traces["source"] == "test_run"
    assert traces["stacktraces"][0]["type"] == "rust_panic"
    assert traces["stacktraces"][0]["frames"] == ["src/lib.rs:17:9"]

    tool = await ws.ok("rust.test")
    assert tool["exit_code"] == 0 and tool["failed_tests"] == []

    packaged = await ws.ok("repo.package")
    assert packaged["artifact_path"] == "target/release/calc"
    assert (ws.root / "target" / "release" / "calc").is_file()
    coverage = await ws.ok("repo.coverage_report")
    assert coverage["coverage_supported"] is False and coverage["exit_code"] == 0


@requires("cargo", "cargo")
async def test_compile_errors_are_diagnostics(ws: Workspace) -> None:
    write(ws.root, {"src/lib.rs": "pub fn add(a: i32) -> i32 {\n    a + missing\n}\n"})
    checked = await ws.ok("repo.validate")
    assert checked["exit_code"] == 101
    assert checked["command"] == ["cargo", "check"]
    assert (
        "src/lib.rs:2:9: error: [E0425] cannot find value `missing` in this scope"
        in checked["diagnostics"]
    )


@requires("cargo", "cargo")
async def test_clippy_and_format(ws: Workspace) -> None:
    clean = await ws.ok("rust.clippy")
    assert clean["exit_code"] == 0, clean["output"]
    write(ws.root, {"src/lib.rs": "pub fn add(a: i32, b: i32) -> i32 {\n    return a + b;\n}\n"})
    lint = await ws.ok("repo.static_analysis")
    assert lint["exit_code"] != 0
    assert any(d.startswith("src/lib.rs:2:5: error: ") for d in lint["diagnostics"]), lint
    write(ws.root, {"src/lib.rs": "pub fn add(a:i32,b:i32)->i32{a+b}\n"})
    unformatted = await ws.ok("rust.format")
    assert unformatted["exit_code"] == 1
    assert unformatted["diagnostics"] == ["src/lib.rs:1: warning: not rustfmt-formatted"]
    formatted = await ws.ok("rust.format", {"check": False})
    assert formatted["exit_code"] == 0
    assert "a: i32, b: i32" in (ws.root / "src" / "lib.rs").read_text()


@requires("cargo", "cargo")
async def test_cargo_flag_allowlist(ws: Workspace) -> None:
    for extra_args in (["-Zunstable-options"], ["--config", "x"], ["--target-dir=/tmp/x"]):
        await ws.fails("repo.build", {"extra_args": extra_args}, ErrorCode.POLICY_DENIED)
    await ws.fails("rust.build", {"target": "calc; rm -rf /"}, ErrorCode.POLICY_DENIED)
    await ws.fails("rust.build", {"target": "../calc"}, ErrorCode.INVALID_ARGUMENT)


async def test_rust_panic_summary_from_output(ws: Workspace) -> None:
    output = await ws.ok("repo.stacktrace_summary", {"output": RUST_PANIC})
    assert output["stacktraces"] == [
        {
            "type": "rust_panic",
            "message": "index out of bounds: the len is 3 but the index is 5",
            "frames": [
                "src/main.rs:4:5",
                "rust_begin_unwind",
                "calc::lookup at ./src/main.rs:4:5",
                "calc::main at ./src/main.rs:8:5",
            ],
            "frame_count": 4,
        }
    ]
