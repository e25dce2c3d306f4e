"""run_command and child_environment with real child processes."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from serve_app.execution.process import (
    DEFAULT_PATH,
    MAX_LOG_LINES,
    PASSTHROUGH_VARIABLES,
    TRUNCATION_MARKER,
    CommandResult,
    child_environment,
    run_command,
)
from tests.support.processes import gone_or_zombie, process_state, wait_for_file

BASE_ENV = {"PATH": DEFAULT_PATH, "LC_ALL": "C"}
SET_BY_SERVICE = {
    "HOME",
    "PYTHONDONTWRITEBYTECODE",
    "LC_ALL",
    "GIT_TERMINAL_PROMPT",
    "GIT_CONFIG_NOSYSTEM",
    "GIT_CEILING_DIRECTORIES",
}


async def run(
    argv: Sequence[str],
    cwd: Path,
    *,
    timeout: float = 20,
    stdin: bytes | None = None,
    output_limit: int = 256 * 1024,
    env: dict[str, str] | None = None,
) -> CommandResult:
    return await run_command(
        argv,
        cwd=cwd,
        env=env if env is not None else BASE_ENV,
        timeout=timeout,
        stdin=stdin,
        output_limit=output_limit,
    )


# exit codes and output --------------------------------------------------------------------------


@pytest.mark.parametrize("code", [0, 1, 3, 42])
async def test_exit_code_is_kept(tmp_path: Path, code: int) -> None:
    result = await run(["sh", "-c", f"exit {code}"], tmp_path)
    assert result.exit_code == code
    assert result.timed_out is False
    assert result.truncated is False


async def test_killed_by_signal_reports_negative_code(tmp_path: Path) -> None:
    result = await run(["sh", "-c", "kill -TERM $$"], tmp_path)
    assert result.exit_code == -15
    assert result.timed_out is False


async def test_stdout_and_stderr_combined_with_channels(tmp_path: Path) -> None:
    result = await run(["sh", "-c", "echo out1; echo err1 >&2; echo out2"], tmp_path)
    assert result.exit_code == 0
    for line in ("out1", "err1", "out2"):
        assert line + "\n" in result.output
    by_channel = {(line.channel, line.message) for line in result.logs}
    assert by_channel == {("stdout", "out1"), ("stdout", "out2"), ("stderr", "err1")}
    stdout_lines = [line.message for line in result.logs if line.channel == "stdout"]
    assert stdout_lines == ["out1", "out2"]


async def test_unterminated_last_line_is_logged(tmp_path: Path) -> None:
    result = await run(["printf", "a\\nno newline"], tmp_path)
    assert result.output == "a\nno newline"
    assert [line.message for line in result.logs] == ["a", "no newline"]


async def test_cwd_is_used(tmp_path: Path) -> None:
    result = await run(["pwd"], tmp_path)
    assert result.output.strip() == os.path.realpath(tmp_path)


async def test_argv_is_not_run_through_a_shell(tmp_path: Path) -> None:
    result = await run(["echo", "$HOME; touch pwned", "*"], tmp_path)
    assert result.output == "$HOME; touch pwned *\n"
    assert not (tmp_path / "pwned").exists()


async def test_output_over_limit_is_truncated_and_process_completes(tmp_path: Path) -> None:
    started = time.monotonic()
    result = await run(
        ["sh", "-c", "yes | head -c 5000000; echo done >&2"], tmp_path, output_limit=4096
    )
    assert result.exit_code == 0
    assert result.timed_out is False
    assert result.truncated is True
    assert result.output.endswith(TRUNCATION_MARKER)
    assert result.output == "y\n" * 2048 + TRUNCATION_MARKER
    assert time.monotonic() - started < 15


async def test_output_at_limit_is_not_truncated(tmp_path: Path) -> None:
    result = await run(["sh", "-c", "yes | head -c 4096"], tmp_path, output_limit=4096)
    assert result.truncated is False
    assert result.output == "y\n" * 2048


async def test_logs_are_capped(tmp_path: Path) -> None:
    result = await run(["seq", "1", str(MAX_LOG_LINES + 500)], tmp_path)
    assert result.exit_code == 0
    assert len(result.logs) == MAX_LOG_LINES
    assert result.logs[-1].message == str(MAX_LOG_LINES)
    assert result.output.endswith(f"{MAX_LOG_LINES + 500}\n")


# timeouts and process groups --------------------------------------------------------------------


async def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    started = time.monotonic()
    result = await run(
        ["sh", "-c", 'sleep 30 & echo $! > "$1"; echo started; wait', "sh", str(pid_file)],
        tmp_path,
        timeout=0.5,
    )
    assert time.monotonic() - started < 10
    assert result.exit_code == 124
    assert result.timed_out is True
    assert "started" in result.output
    pid = int(await wait_for_file(pid_file))
    assert await gone_or_zombie(pid), f"grandchild {pid} still running: {process_state(pid)}"


async def test_background_grandchild_holding_pipes_does_not_block(tmp_path: Path) -> None:
    pid_file = tmp_path / "bg.pid"
    started = time.monotonic()
    result = await run(
        ["sh", "-c", 'sleep 30 & echo $! > "$1"; echo done', "sh", str(pid_file)], tmp_path
    )
    assert time.monotonic() - started < 15
    assert result.exit_code == 0
    assert result.timed_out is False
    assert result.output == "done\n"
    pid = int(await wait_for_file(pid_file))
    assert await gone_or_zombie(pid)


async def test_cancellation_kills_the_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "cancel.pid"
    task = asyncio.ensure_future(
        run(
            ["sh", "-c", 'sleep 30 & echo $! > "$1"; wait', "sh", str(pid_file)],
            tmp_path,
            timeout=30,
        )
    )
    pid = int(await wait_for_file(pid_file))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await gone_or_zombie(pid)


async def test_nonexistent_program(tmp_path: Path) -> None:
    result = await run(["/nonexistent/program-xyz"], tmp_path)
    assert result.exit_code == -1
    assert result.timed_out is False
    assert "cannot start" in result.output


async def test_empty_argv_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        await run([], tmp_path)


# stdin ------------------------------------------------------------------------------------------


async def test_stdin_is_delivered(tmp_path: Path) -> None:
    result = await run(["cat"], tmp_path, stdin=b"hello\nworld")
    assert result.exit_code == 0
    assert result.output == "hello\nworld"


async def test_large_stdin_with_small_output_limit(tmp_path: Path) -> None:
    data = b"z" * (4 * 1024 * 1024)
    result = await run(["cat"], tmp_path, stdin=data, output_limit=1024)
    assert result.exit_code == 0
    assert result.truncated is True
    assert result.output == "z" * 1024 + TRUNCATION_MARKER


async def test_child_ignoring_stdin_finishes(tmp_path: Path) -> None:
    result = await run(["true"], tmp_path, stdin=b"x" * (4 * 1024 * 1024))
    assert result.exit_code == 0
    assert result.timed_out is False


async def test_timeout_applies_while_stdin_is_not_read(tmp_path: Path) -> None:
    started = time.monotonic()
    result = await run(["sleep", "20"], tmp_path, timeout=0.5, stdin=b"x" * (4 * 1024 * 1024))
    assert result.timed_out is True
    assert result.exit_code == 124
    assert time.monotonic() - started < 10


async def test_without_stdin_the_child_reads_eof(tmp_path: Path) -> None:
    result = await run(["cat"], tmp_path, timeout=10)
    assert result.exit_code == 0
    assert result.timed_out is False
    assert result.output == ""


# environment ------------------------------------------------------------------------------------


def test_child_environment_is_an_allowlist(tmp_path: Path) -> None:
    service_env = {
        "PATH": "/opt/tools/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": "UTC",
        "CUDA_VISIBLE_DEVICES": "0",
        "WORKSPACE_AUTH_SHARED_TOKEN": "s3cret",
        "AWS_SECRET_ACCESS_KEY": "aws-s3cret",
        "REDIS_PASSWORD": "redis-s3cret",
        "HOME": "/root",
        "GIT_DIR": "/elsewhere/.git",
    }
    workspace = tmp_path / "t" / "s" / "repo"
    home = tmp_path / "t" / "s" / "home"
    env = child_environment(home=home, workspace=workspace, service_env=service_env)
    assert set(env) <= set(PASSTHROUGH_VARIABLES) | SET_BY_SERVICE
    assert "s3cret" not in "".join(env.values())
    assert env["PATH"] == "/opt/tools/bin:/usr/bin:/bin"
    assert env["LANG"] == "en_US.UTF-8"
    assert env["TZ"] == "UTC"
    assert env["CUDA_VISIBLE_DEVICES"] == "0"
    assert env["HOME"] == str(home)
    assert env["GIT_CEILING_DIRECTORIES"] == str(workspace.parent)
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["GIT_CONFIG_NOSYSTEM"] == "1"
    assert env["LC_ALL"] == "C.UTF-8"
    assert "GIT_DIR" not in env


def test_child_environment_defaults(tmp_path: Path) -> None:
    env = child_environment(home=tmp_path / "home", workspace=tmp_path / "repo", service_env={})
    assert env["PATH"] == DEFAULT_PATH
    assert env["LANG"] == "C.UTF-8"
    assert env["HOME"] == str(tmp_path / "home")


def test_child_environment_from_the_real_process_environment(tmp_path: Path) -> None:
    env = child_environment(home=tmp_path / "home", workspace=tmp_path / "repo")
    assert set(env) <= set(PASSTHROUGH_VARIABLES) | SET_BY_SERVICE
    if "PATH" in os.environ:
        assert env["PATH"] == os.environ["PATH"]


async def test_child_process_sees_only_the_child_environment(tmp_path: Path) -> None:
    workspace = tmp_path / "t" / "s" / "repo"
    workspace.mkdir(parents=True)
    home = tmp_path / "t" / "s" / "home"
    service_env = {
        "PATH": os.environ.get("PATH", DEFAULT_PATH),
        "WORKSPACE_AUTH_SHARED_TOKEN": "s3cret",
    }
    env = child_environment(home=home, workspace=workspace, service_env=service_env)
    result = await run(["env"], workspace, env=env)
    assert result.exit_code == 0
    seen = dict(line.split("=", 1) for line in result.output.splitlines() if "=" in line)
    assert "WORKSPACE_AUTH_SHARED_TOKEN" not in seen
    assert "s3cret" not in result.output
    assert seen["HOME"] == str(home)
    assert seen["GIT_CEILING_DIRECTORIES"] == str(workspace.parent)
    assert set(seen) <= set(PASSTHROUGH_VARIABLES) | SET_BY_SERVICE | {"PWD", "SHLVL", "_"}
