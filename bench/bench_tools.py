"""What a tool invocation costs on top of the command it runs, side by side in one run.

For `git.status` (a small repository) and `repo.test` (a small Python project with 3 passing
tests) it measures, one call at a time:

  http/uvloop   the invocation through the in-process HTTP app served by uvicorn with its default
                event loop (uvloop when installed), as bench/serve_target.py `inprocess` does:
                parsing, policy, the invocation record, the child process, output and log
                artifacts;
  http/asyncio  the same server on the standard asyncio event loop;
  executor      the tool alone: ExecutionService.execute in this process on asyncio (handler,
                child process, output parsing), no HTTP and no records;
  direct        the same command run with subprocess.run in the same workspace, with the same
                scrubbed environment the tool's child gets.

and prints p50/p99 of each, the HTTP/direct ratio and the overhead in milliseconds. If
`git.status` is not in the catalog, `repo.changed_files` (also `git status --porcelain`) is
measured instead. For scale it also times `fs.stat` over HTTP: the service's floor for a tool
without a child process.

    .venv/bin/python bench/bench_tools.py [--git-requests 200] [--test-requests 40]
"""

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serve_app.domain.execution import ExecutionRequest
from serve_app.execution.executor import ExecutionService
from serve_app.execution.process import child_environment
from serve_app.tools import build_registry
from tests.support.projects import make_session

REPO = Path(__file__).resolve().parents[1]
PRINCIPAL = {"tenant_id": "bench", "actor_id": "bench", "roles": ["developer"]}


@dataclass
class Row:
    tool: str
    samples: dict[str, list[float]]  # by way: http/uvloop, http/asyncio, executor, direct

    def p50(self, way: str) -> float:
        return percentile(self.samples[way], 0.5)

    def p99(self, way: str) -> float:
        return percentile(self.samples[way], 0.99)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def git(cwd: Path, *args: str) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.invalid",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    }
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def make_sources(root: Path) -> tuple[Path, Path]:
    """A small git repository (20 files, one modified, one untracked) and a Python project."""
    repo = root / "git-repo"
    (repo / "src").mkdir(parents=True)
    for n in range(20):
        (repo / "src" / f"module_{n}.py").write_text(f"VALUE = {n}\n")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    (repo / "src" / "module_3.py").write_text("VALUE = 33\n")
    (repo / "notes.txt").write_text("untracked\n")

    project = root / "py-project"
    (project / "tests").mkdir(parents=True)
    (project / "pyproject.toml").write_text('[project]\nname = "calc"\nversion = "0.1.0"\n')
    (project / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (project / "tests" / "test_calc.py").write_text(
        textwrap.dedent(
            """\
            from calc import add


            def test_add():
                assert add(1, 2) == 3


            def test_add_zero():
                assert add(0, 0) == 0


            def test_add_negative():
                assert add(-1, -2) == -3
            """
        )
    )
    return repo, project


def serve(loop: str, port: int, data: Path) -> None:
    """The in-process app (serve_target.py `inprocess`), with the event loop chosen."""
    import uvicorn

    from serve_app.api.app import create_app
    from serve_app.config import Settings
    from serve_app.wiring import build_executor, build_session_service

    config = Settings(workspace_root=data / "workspaces", artifact_root=data / "artifacts")
    app = create_app(build_session_service(config, build_executor(config)))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", loop=loop)
    )
    threading.Timer(1.0, lambda: print(f"READY http://127.0.0.1:{port}", flush=True)).start()
    server.run()


def start_server(
    loop: str, data: Path, sources: Path, path: str
) -> tuple[subprocess.Popen[str], str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PATH": path,
        "WORKSPACE_SOURCE_REPO_ROOTS": str(sources),
    }
    process = subprocess.Popen(
        [sys.executable, __file__, "serve", loop, str(free_port()), str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith("READY "):
            return process, line.split()[1]
        if not line and process.poll() is not None:
            break
    os.killpg(process.pid, signal.SIGKILL)
    raise RuntimeError("the in-process server did not start")


def stop_server(process: subprocess.Popen[str]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)


def open_session(http: httpx.Client, base: str, source: Path) -> str:
    body = {"principal": PRINCIPAL, "source_repo_path": str(source)}
    response = http.post(f"{base}/v1/sessions", json=body)
    response.raise_for_status()
    return str(response.json()["session"]["id"])


def tool_names(http: httpx.Client, base: str, session: str) -> set[str]:
    response = http.get(f"{base}/v1/sessions/{session}/tools")
    return {tool["name"] for tool in response.json()["tools"]}


def time_http(
    http: httpx.Client, url: str, args: dict[str, object], count: int, check: str
) -> list[float]:
    samples = []
    for index in range(count + max(3, count // 10)):
        began = time.perf_counter()
        response = http.post(url, json={"args": args})
        elapsed = time.perf_counter() - began
        payload = response.json()
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}: {payload}")
        if check not in json.dumps(payload):
            raise RuntimeError(f"{url}: {check!r} not in the answer")
        if index >= max(3, count // 10):
            samples.append(elapsed)
    return samples


def time_direct(argv: list[str], cwd: Path, env: dict[str, str], count: int) -> list[float]:
    samples = []
    for index in range(count + max(3, count // 10)):
        began = time.perf_counter()
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False)
        elapsed = time.perf_counter() - began
        if done.returncode != 0:
            raise RuntimeError(f"{argv} exited {done.returncode}: {done.stdout!r}")
        if index >= max(3, count // 10):
            samples.append(elapsed)
    return samples


def time_executor(tool: str, workspace: Path, count: int, check: str) -> list[float]:
    registry = build_registry()
    service = ExecutionService(registry)
    found = registry.get(tool)
    assert found is not None
    session = make_session(workspace)

    async def measure() -> list[float]:
        samples = []
        for index in range(count + max(3, count // 10)):
            request = ExecutionRequest(
                invocation_id=f"bench-{index}",
                tool_name=tool,
                args={},
                session=session,
                timeout_seconds=found.capability.constraints.timeout_seconds,
            )
            began = time.perf_counter()
            result = await service.execute(request)
            elapsed = time.perf_counter() - began
            if result.error is not None or check not in json.dumps(result.output):
                raise RuntimeError(f"{tool} in process: {result.error} {result.output}")
            if index >= max(3, count // 10):
                samples.append(elapsed)
        return samples

    try:
        return asyncio.run(measure())
    finally:
        service.close()


WAYS = ("http/uvloop", "http/asyncio", "executor", "direct")


def report(rows: list[Row], floors: dict[str, list[float]]) -> None:
    header = " | ".join(f"{way} p50 / p99 ms" for way in WAYS)
    print(f"| tool | {header} | HTTP/direct p50 (uvloop, asyncio) | overhead p50 ms |")
    print("|---|" + "---|" * (len(WAYS) + 2))
    for row in rows:
        cells = " | ".join(f"{row.p50(way):.2f} / {row.p99(way):.2f}" for way in WAYS)
        direct = row.p50("direct")
        ratios = ", ".join(f"{row.p50(way) / direct:.2f}x" for way in WAYS[:2])
        overheads = ", ".join(f"{row.p50(way) - direct:+.2f}" for way in WAYS[:2])
        print(f"| {row.tool} | {cells} | {ratios} | {overheads} |")
    for way, floor in floors.items():
        print(
            f"\nfs.stat {way} (no child process): p50 {percentile(floor, 0.5):.2f} ms, "
            f"p99 {percentile(floor, 0.99):.2f} ms"
        )


def measure(
    options: argparse.Namespace, root: Path, path: str
) -> tuple[list[Row], dict[str, list[float]]]:
    git_source, project_source = make_sources(root / "sources")
    rows: dict[str, dict[str, list[float]]] = {}
    floors: dict[str, list[float]] = {}
    status_tool = "git.status"
    for loop, way in (("auto", "http/uvloop"), ("asyncio", "http/asyncio")):
        data = root / f"data-{loop}"
        server, base = start_server(loop, data, root / "sources", path)
        try:
            with httpx.Client(timeout=120) as http:
                git_session = open_session(http, base, git_source)
                test_session = open_session(http, base, project_source)
                if "git.status" not in tool_names(http, base, git_session):
                    status_tool = "repo.changed_files"
                invoke = f"{base}/v1/sessions/{{}}/tools/{{}}/invoke"
                floors[way] = time_http(
                    http,
                    invoke.format(git_session, "fs.stat"),
                    {"path": "notes.txt"},
                    options.git_requests,
                    "notes.txt",
                )
                rows.setdefault(status_tool, {})[way] = time_http(
                    http,
                    invoke.format(git_session, status_tool),
                    {},
                    options.git_requests,
                    "module_3.py",
                )
                rows.setdefault("repo.test", {})[way] = time_http(
                    http,
                    invoke.format(test_session, "repo.test"),
                    {},
                    options.test_requests,
                    "3 passed",
                )
        finally:
            stop_server(server)
        # The last server's workspaces serve the executor and direct measurements.
        git_ws = data / "workspaces" / PRINCIPAL["tenant_id"] / git_session / "repo"
        test_ws = data / "workspaces" / PRINCIPAL["tenant_id"] / test_session / "repo"
    if status_tool != "git.status":
        print("git.status is not registered: measuring repo.changed_files instead")
    git_env = child_environment(home=git_ws.parent / "home", workspace=git_ws)
    test_env = child_environment(home=test_ws.parent / "home", workspace=test_ws)
    rows[status_tool]["executor"] = time_executor(
        status_tool, git_ws, options.git_requests, "module_3.py"
    )
    rows[status_tool]["direct"] = time_direct(
        ["git", "status", "--porcelain=v1"], git_ws, git_env, options.git_requests
    )
    rows["repo.test"]["executor"] = time_executor(
        "repo.test", test_ws, options.test_requests, "3 passed"
    )
    rows["repo.test"]["direct"] = time_direct(
        ["python3", "-m", "pytest", "-q"], test_ws, test_env, options.test_requests
    )
    return [Row(tool, samples) for tool, samples in rows.items()], floors


def main() -> None:
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--git-requests", type=int, default=200)
    parser.add_argument("--test-requests", type=int, default=40)
    options = parser.parse_args()
    # The service's PATH starts with this interpreter's bin directory (the project venv, which
    # has pytest), so `python3 -m pytest` means the same to the tool and to the baseline.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ["PATH"] = path  # for the in-process executor's children too
    with tempfile.TemporaryDirectory(prefix="bench-tools-") as scratch:
        rows, floors = measure(options, Path(scratch), path)
    print(
        f"\n{options.git_requests} {rows[0].tool} and {options.test_requests} repo.test calls per "
        "way, one at a time, after warm-up:\n"
    )
    report(rows, floors)


if __name__ == "__main__":
    main()
