"""scripts/smoke.py (`make smoke`, `make smoke-persistence`) against the real application served by
uvicorn on a loopback port, run as a separate process by the base Python interpreter (no virtual
environment: the script must need nothing beyond the standard library)."""

from __future__ import annotations

import ast
import asyncio
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx
import uvicorn

from serve_app.api.app import create_app
from serve_app.api.auth import Authenticator
from serve_app.config import Settings
from serve_app.wiring import build_executor, build_session_service, build_stores
from tests.conftest import valkey_settings_for
from tests.support.network import free_port

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "smoke.py"
TOKEN = "smoke-" + "k" * 40
SMOKE_LINES = ["health_ok", "tools_ok", "fs_write_ok", "fs_read_ok", "session_closed", "SMOKE_OK"]


def base_python() -> str:
    """The interpreter the virtual environment was made from: it has none of our packages."""
    for name in ("python3", "python"):
        candidate = Path(sys.base_prefix) / "bin" / name
        if candidate.exists():
            return str(candidate)
    return sys.executable


@contextmanager
def serving(
    settings: Settings, port: int, authenticator: Authenticator | None = None
) -> Iterator[str]:
    """The application (in-process services, its own stores) on 127.0.0.1:port until exit."""
    stores = build_stores(settings)
    service = build_session_service(settings, build_executor(settings), stores=stores)
    app = create_app(service, authenticator=authenticator)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )

    async def serve() -> None:
        try:
            await server.serve()
        finally:
            await stores.close()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "the server stopped while starting"
        assert time.monotonic() < deadline, "the server did not start within 20 s"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        assert not thread.is_alive(), "the server did not stop"


def smoke_env(**extra: str) -> dict[str, str]:
    """This environment without any WORKSPACE_* variable (no token leaks in from outside)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("WORKSPACE_")}
    env.update(extra)
    return env


def run_smoke(url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [base_python(), "-I", str(SCRIPT), *args, "--url", url],
        capture_output=True,
        text=True,
        env=smoke_env(**env),
        timeout=120,
        check=False,
    )


def steps(stdout: str) -> list[str]:
    """The printed lines with the session id taken off `session_created:`."""
    return [
        line.split(":")[0] if line.startswith("session_created:") else line
        for line in stdout.splitlines()
    ]


def test_the_script_imports_only_the_standard_library() -> None:
    tree = ast.parse(SCRIPT.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported - {"__future__"} <= sys.stdlib_module_names, imported


def test_smoke_passes_against_a_local_app(settings: Settings) -> None:
    with serving(settings, free_port()) as url:
        result = run_smoke(url)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[1].startswith("session_created:session-")
        assert steps(result.stdout) == ["health_ok", "session_created", *SMOKE_LINES[1:]]
        session_id = lines[1].split(":", 1)[1]
        assert httpx.get(f"{url}/v1/sessions/{session_id}").status_code == 404  # closed


def test_smoke_speaks_trusted_headers_when_given_the_token(settings: Settings) -> None:
    authenticator = Authenticator(mode="trusted_headers", token=TOKEN.encode())
    with serving(settings, free_port(), authenticator) as url:
        result = run_smoke(url, WORKSPACE_AUTH_TOKEN=TOKEN)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[-1] == "SMOKE_OK"
        # The service saw the contract's test-14 identity: its workspace directory is the tenant's.
        assert (settings.workspace_root / "e2e-tenant").is_dir()


def test_smoke_honours_renamed_auth_headers(settings: Settings) -> None:
    authenticator = Authenticator(
        mode="trusted_headers", token=TOKEN.encode(), token_header="X-Proxy-Token"
    )
    with serving(settings, free_port(), authenticator) as url:
        renamed = run_smoke(
            url, WORKSPACE_AUTH_TOKEN=TOKEN, WORKSPACE_AUTH_TOKEN_HEADER="X-Proxy-Token"
        )
        assert renamed.returncode == 0, renamed.stderr
        default_names = run_smoke(url, WORKSPACE_AUTH_TOKEN=TOKEN)
        assert default_names.returncode == 1
        assert "HTTP 401 unauthorized" in default_names.stderr


def test_smoke_without_the_token_stops_at_the_401(settings: Settings) -> None:
    authenticator = Authenticator(mode="trusted_headers", token=TOKEN.encode())
    with serving(settings, free_port(), authenticator) as url:
        result = run_smoke(url)
    assert result.returncode == 1
    assert result.stdout.splitlines() == ["health_ok"]
    assert result.stderr.strip() == (
        "SMOKE_FAILED: create session: HTTP 401 unauthorized: invalid authentication token"
    )


def test_smoke_names_an_unreachable_service() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run_smoke(url)
    assert result.returncode == 1
    assert result.stdout == ""
    assert f"SMOKE_FAILED: cannot reach {url}" in result.stderr


class Lines:
    """A process's stdout, line by line, readable with a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert process.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:
            self._queue.put(line.rstrip("\n"))

    def rest(self) -> list[str]:
        """Every line, once the process has closed its stdout."""
        self._reader.join(timeout=10)
        assert not self._reader.is_alive(), "stdout was not closed"
        while not self._queue.empty():
            self.seen.append(self._queue.get())
        return self.seen

    def wait_for(self, prefix: str, seconds: float = 60) -> str:
        deadline = time.monotonic() + seconds
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no line starting {prefix!r} within {seconds} s: {self.seen}"
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(line)
            if line.startswith(prefix):
                return line


def restart_check(settings: Settings) -> tuple[int, list[str], str]:
    """`smoke.py persistence` while the application is stopped and started again on its port."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with serving(settings, port):
        process = subprocess.Popen(
            [
                base_python(),
                "-I",
                str(SCRIPT),
                "persistence",
                "--url",
                url,
                "--restart-timeout",
                "60",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=smoke_env(),
        )
        lines = Lines(process)
        lines.wait_for("restart the service now")
    # Stopped; once the script has seen it down, a new process's worth of services, same
    # settings and port.
    lines.wait_for("service_stopped")
    with serving(settings, port):
        returncode = process.wait(timeout=120)
    assert process.stderr is not None
    return returncode, lines.rest(), process.stderr.read()


def test_persistence_check_survives_a_restart_with_valkey(
    settings: Settings, valkey_address: str
) -> None:
    returncode, lines, stderr = restart_check(valkey_settings_for(settings, valkey_address))
    assert returncode == 0, stderr
    assert lines[-5:-3] == [line for line in lines if line.startswith("invocation_ok:")]
    assert lines[-3:] == ["workspace_ok", "session_closed", "PERSISTENCE_OK"]
    assert lines.index("service_stopped") < lines.index("service_restarted")
    created = next(line for line in lines if line.startswith("invocations_created:"))
    ids = created.split(":", 1)[1].split(",")
    assert [line.split(":", 1)[1] for line in lines if line.startswith("invocation_ok:")] == ids


def test_persistence_check_fails_when_the_stores_forget(settings: Settings) -> None:
    returncode, lines, stderr = restart_check(settings)  # in-memory stores
    assert returncode == 1
    assert "service_restarted" in lines
    assert "PERSISTENCE_OK" not in lines
    assert "HTTP 404 not_found" in stderr
    assert "the restart lost it" in stderr


def test_persistence_halves_run_separately(settings: Settings, valkey_address: str) -> None:
    with serving(valkey_settings_for(settings, valkey_address), free_port()) as url:
        created = run_smoke(url, "persistence-create")
        assert created.returncode == 0, created.stderr
        lines = created.stdout.splitlines()
        session_id = lines[1].split(":", 1)[1]
        ids = lines[-1].split(":", 1)[1]
        assert lines[-1].startswith("invocations_created:")
        checked = run_smoke(url, "persistence-check", "--session", session_id, "--ids", ids)
        assert checked.returncode == 0, checked.stderr
        assert checked.stdout.splitlines()[-1] == "PERSISTENCE_OK"
        usage = run_smoke(url, "persistence-check", "--session", session_id)
        assert usage.returncode == 2
        assert "needs --session and --ids" in usage.stderr


def make_smoke(url: str, *variables: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in smoke_env().items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-s",
            "smoke",
            f"WORKSPACE_URL={url}",
            f"SMOKE_PYTHON={base_python()}",
            *variables,
        ],
        cwd=SCRIPT.parents[1],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_make_smoke_runs_against_any_base_url(settings: Settings) -> None:
    authenticator = Authenticator(mode="trusted_headers", token=TOKEN.encode())
    with serving(settings, free_port(), authenticator) as url:
        result = make_smoke(url, f"WORKSPACE_AUTH_TOKEN={TOKEN}")
        assert result.returncode == 0, result.stderr
        assert steps(result.stdout) == ["health_ok", "session_created", *SMOKE_LINES[1:]]
        without_token = make_smoke(url)
        assert without_token.returncode != 0
        assert "HTTP 401 unauthorized" in without_token.stderr
