"""Attacks from one session's own code (tests run by python.test / repo.test / c.test), through
the executor and the sandboxed local runtime: real processes, a real bubblewrap sandbox."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from serve_app.config import Settings
from serve_app.domain.execution import ExecutionResult
from serve_app.domain.models import Session
from serve_app.execution.executor import ExecutionService
from serve_app.wiring import build_executor
from tests.support.execution import make_session, run
from tests.support.processes import (
    host_processes_with_argument,
    none_left_with_argument,
    unique_seconds,
)
from tests.support.projects import service_python_first

FAKE_TOKEN = "fake-shared-token-" + "k" * 24
FAKE_VALKEY_PASSWORD = "fake-valkey-password-" + "v" * 20
SECRET = "other-tenant-secret-" + "s" * 16


def _session_dirs(root: Path, tenant: str, session: str) -> Path:
    workspace = root / tenant / session / "repo"
    workspace.mkdir(parents=True)
    return workspace


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "workspaces", tmp_path / "artifacts"


@pytest.fixture
def attacker(roots: tuple[Path, Path]) -> Session:
    return make_session(_session_dirs(roots[0], "tenant-a", "attacker"), session_id="attacker")


@pytest.fixture
def victim(roots: tuple[Path, Path]) -> Path:
    workspace = _session_dirs(roots[0], "tenant-b", "victim")
    (workspace / "secret.txt").write_text(SECRET)
    (workspace.parent / "home").mkdir()
    (workspace.parent / "home" / ".netrc").write_text(SECRET)
    return workspace


@pytest.fixture
def executor(
    roots: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[ExecutionService]:
    monkeypatch.setenv("WORKSPACE_AUTH_SHARED_TOKEN", FAKE_TOKEN)
    monkeypatch.setenv("VALKEY_PASSWORD", FAKE_VALKEY_PASSWORD)
    service_python_first(monkeypatch)
    settings = Settings(
        workspace_root=roots[0],
        artifact_root=roots[1],
        sandbox_max_processes=64,
        sandbox_max_file_size_mb=1,
        extra_tool_families=["tests.support.tools:TOOLS"],
    )
    service = build_executor(settings)
    yield service
    service.close()


def _python_tests(session: Session, body: str) -> None:
    tests = Path(session.workspace_path) / "tests"
    tests.mkdir(exist_ok=True)
    (tests / "test_attack.py").write_text(textwrap.dedent(body).lstrip())


async def _python_test(
    executor: ExecutionService, session: Session, timeout: float = 60
) -> ExecutionResult:
    return await run(executor, session, "python.test", {"target": "tests"}, timeout=timeout)


def _passed(result: ExecutionResult) -> dict[str, Any]:
    """The test run completed and every attack assertion in it held."""
    assert result.error is None, (result.error, result.output)
    output = result.output
    assert isinstance(output, dict)
    assert output["exit_code"] == 0, output["output"]
    assert " passed" in output["output"] and "failed" not in output["output"], output["output"]
    return output


async def test_another_sessions_files_are_not_there(
    executor: ExecutionService, attacker: Session, victim: Path, roots: tuple[Path, Path]
) -> None:
    _python_tests(
        attacker,
        f"""
        import os
        import pytest

        def test_other_workspace_is_invisible():
            for path in {[str(victim / "secret.txt"), str(victim.parent / "home" / ".netrc")]!r}:
                with pytest.raises(OSError):
                    open(path).read()
            # The workspace root shows this tenant only; the artifact root is not there at all.
            assert os.listdir({str(roots[0])!r}) == ["tenant-a"]
            assert not os.path.exists({str(roots[1])!r})

        def test_symlink_to_another_workspace_leads_nowhere():
            os.symlink({str(victim / "secret.txt")!r}, "link")
            with pytest.raises(OSError):
                open("link").read()
        """,
    )
    _passed(await _python_test(executor, attacker))


async def test_c_test_code_cannot_read_another_session(
    executor: ExecutionService, attacker: Session, victim: Path
) -> None:
    workspace = Path(attacker.workspace_path)
    (workspace / "steal_test.c").write_text(
        textwrap.dedent(
            f"""
            #include <stdio.h>
            int main(void) {{
                FILE *f = fopen("{victim / "secret.txt"}", "r");
                if (f) {{ char b[64] = {{0}}; fread(b, 1, 63, f); printf("STOLEN %s\\n", b); }}
                else {{ printf("blocked\\n"); }}
                return 0;
            }}
            """
        )
    )
    result = await run(executor, attacker, "c.test", {}, timeout=60)
    assert result.error is None, (result.error, result.output)
    assert "blocked" in result.output["output"]
    assert SECRET not in json.dumps(result.output)


async def test_no_secret_is_readable_anywhere_in_the_sandbox(
    executor: ExecutionService, attacker: Session
) -> None:
    _python_tests(
        attacker,
        f"""
        import os

        # Spelled backwards, so that this file does not hold them itself.
        SECRETS = [s[::-1].encode() for s in {[FAKE_TOKEN[::-1], FAKE_VALKEY_PASSWORD[::-1]]!r}]
        SKIP = ("/proc", "/sys", "/dev", "/usr")

        def _clean(data):
            assert not any(secret in data for secret in SECRETS)

        def test_proc_shows_only_the_sandbox():
            pids = [p for p in os.listdir("/proc") if p.isdigit()]
            assert len(pids) < 20, pids
            for pid in pids:
                for name in ("environ", "cmdline"):
                    try:
                        _clean(open(f"/proc/{{pid}}/{{name}}", "rb").read())
                    except OSError:
                        pass

        def test_no_readable_file_holds_a_secret():
            checked = 0
            for top in os.listdir("/"):
                if "/" + top in SKIP:
                    continue
                for directory, _, files in os.walk("/" + top):
                    if "pyenv" in directory or "rustup" in directory or ".venv" in directory:
                        continue
                    for name in files:
                        try:
                            with open(os.path.join(directory, name), "rb") as handle:
                                _clean(handle.read(1 << 20))
                            checked += 1
                        except OSError:
                            pass
            assert checked > 10
        """,
    )
    output = _passed(await _python_test(executor, attacker))
    assert "2 passed" in output["output"]


async def test_writes_outside_the_workspace_fail(
    executor: ExecutionService, attacker: Session, victim: Path, roots: tuple[Path, Path]
) -> None:
    _python_tests(
        attacker,
        f"""
        import os
        import pytest

        # (The workspace root itself lies under /tmp here, which inside is the session's TMP:
        # what lands there stays the session's own, as the host-side check below shows.)
        TARGETS = [
            "/planted",
            "/usr/planted",
            "/etc/planted",
            {str(victim / "planted")!r},
            {str(roots[1] / "planted")!r},
        ]

        def test_outside_is_read_only_or_absent():
            for target in TARGETS:
                with pytest.raises(OSError):
                    with open(target, "w") as handle:
                        handle.write("x")

        def test_tmp_and_home_are_the_sessions_own():
            with open("/tmp/scratch", "w") as handle:
                handle.write("mine")
            with open(os.path.join(os.environ["HOME"], "note"), "w") as handle:
                handle.write("mine")
        """,
    )
    _passed(await _python_test(executor, attacker))
    assert not (victim / "planted").exists() and not (roots[0] / "planted").exists()
    session_dir = Path(attacker.workspace_path).parent
    assert (session_dir / "tmp" / "scratch").read_text() == "mine"
    assert not Path("/tmp/scratch").exists() or Path("/tmp/scratch").read_text() != "mine"


async def test_a_setsid_daemon_dies_with_the_invocation(
    executor: ExecutionService, attacker: Session
) -> None:
    seconds = unique_seconds(300)
    _python_tests(
        attacker,
        f"""
        import subprocess

        def test_leave_a_daemon_behind():
            subprocess.Popen(
                ["setsid", "sleep", "{seconds}"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        """,
    )
    _passed(await _python_test(executor, attacker))
    assert await none_left_with_argument(seconds), "the daemon outlived the invocation"


async def test_a_setsid_daemon_dies_on_timeout(
    executor: ExecutionService, attacker: Session
) -> None:
    seconds = unique_seconds(300)
    _python_tests(
        attacker,
        f"""
        import subprocess
        import time

        def test_hang_with_a_daemon():
            subprocess.Popen(["setsid", "sleep", "{seconds}"], start_new_session=True)
            time.sleep(120)
        """,
    )
    seen_running = False

    async def watch() -> None:
        nonlocal seen_running
        for _ in range(200):
            if host_processes_with_argument(seconds):
                seen_running = True
                return
            await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch())
    result = await _python_test(executor, attacker, timeout=5)
    await watcher
    assert result.error is not None and result.error.code == "timeout"
    assert seen_running, "the daemon never started: the test proves nothing"
    assert await none_left_with_argument(seconds), "the daemon outlived the timeout"


@pytest.fixture
def listener() -> Iterator[int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port: int = server.getsockname()[1]
    yield port
    server.close()


async def test_network_only_for_tools_that_declare_it(
    executor: ExecutionService, attacker: Session, listener: int
) -> None:
    closed = await run(executor, attacker, "python.test", {"target": "tests"})
    assert closed.error is None
    without = await run(executor, attacker, "test.connect", {"port": listener})
    assert without.error is None and without.output["connected"] is False, without.output
    assert "refused" in without.output["output"] or "unreachable" in without.output["output"]
    with_network = await run(executor, attacker, "test.connect_network", {"port": listener})
    assert with_network.error is None and with_network.output["connected"] is True


async def test_python_test_has_no_network(
    executor: ExecutionService, attacker: Session, listener: int
) -> None:
    _python_tests(
        attacker,
        f"""
        import socket
        import pytest

        def test_cannot_reach_the_host():
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", {listener}), timeout=3)
        """,
    )
    _passed(await _python_test(executor, attacker))


async def test_a_fork_bomb_is_contained(executor: ExecutionService, attacker: Session) -> None:
    _python_tests(
        attacker,
        """
        import os
        import time

        def test_fork_until_refused():
            children = []
            error = None
            try:
                for _ in range(10_000):
                    pid = os.fork()
                    if pid == 0:
                        time.sleep(5)
                        os._exit(0)
                    children.append(pid)
            except OSError as exc:
                error = exc
            assert error is not None and len(children) < 64
            raise error
        """,
    )
    result = await _python_test(executor, attacker)
    assert result.error is None and result.output["exit_code"] == 1, result.output
    assert "BlockingIOError: [Errno 11] Resource temporarily unavailable" in result.output["output"]


async def test_an_oversize_file_is_refused(executor: ExecutionService, attacker: Session) -> None:
    _python_tests(
        attacker,
        """
        import errno
        import pytest

        def test_write_past_the_limit():
            with pytest.raises(OSError) as refused:
                with open("big.bin", "wb") as handle:
                    handle.write(b"x" * (2 * 1024 * 1024))
            assert refused.value.errno == errno.EFBIG
        """,
    )
    _passed(await _python_test(executor, attacker))
    assert os.path.getsize(Path(attacker.workspace_path) / "big.bin") <= 1024 * 1024


async def test_a_shell_killed_by_the_file_limit_says_so(
    executor: ExecutionService, attacker: Session
) -> None:
    from serve_app.runtime.local import LocalRuntime

    runtime = LocalRuntime(attacker, executor.sandbox)
    result = await runtime.run(["sh", "-c", "head -c 3000000 /dev/zero > big"], timeout=20)
    assert result.exit_code == 128 + 25
    assert "file size limit of 1048576 bytes exceeded" in result.output
