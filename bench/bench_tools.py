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
without a child process. The http ways above run with the sandbox the service would choose
(WORKSPACE_SANDBOX, default bubblewrap); the executor way uses ExecutionService's default
Sandbox() (bubblewrap, no pids cgroup).

Sandbox cost, in the same run:

  sandbox on/off   two uvloop servers side by side, one with Settings(sandbox="bubblewrap"), one
                   with Settings(sandbox="none"), called alternately (on, off, on, off, ...) for
                   git.status, repo.test and fs.stat (which spawns nothing, so should not move);
  spawn            the bare start cost of a sandbox: `true` through Sandbox.wrap() and pieces of
                   it (no --unshare-net, no `sh` limits prologue, bwrap with namespaces only, the
                   pids cgroup create/join/remove when running as root) against a bare `true`
                   started with subprocess.run, the same count each, round-robin.

    .venv/bin/python bench/bench_tools.py [--git-requests 100] [--test-requests 20]
        [--spawn-requests 200] [--skip-ways] [--skip-sandbox]
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
from serve_app.runtime.sandbox import (
    JOIN_CGROUP,
    Mounts,
    ProcessCgroups,
    Sandbox,
    SandboxLimits,
    SandboxUnavailable,
)
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


def serve(loop: str, port: int, data: Path, sandbox: str | None = None) -> None:
    """The in-process app (serve_target.py `inprocess`), with the event loop and, when given,
    the sandbox mode chosen (else Settings' default: WORKSPACE_SANDBOX, then bubblewrap)."""
    import uvicorn

    from serve_app.api.app import create_app
    from serve_app.config import Settings
    from serve_app.wiring import build_executor, build_session_service

    chosen: dict[str, object] = {} if sandbox in (None, "default") else {"sandbox": sandbox}
    if sandbox == NO_CGROUP:
        # Bubblewrap without the per-call pids cgroup (the process limit off): what a service
        # running as root pays for the cgroup, measured against the same sandbox without it.
        chosen = {"sandbox": "bubblewrap", "sandbox_max_processes": 0}
    config = Settings(
        workspace_root=data / "workspaces", artifact_root=data / "artifacts", **chosen
    )
    app = create_app(build_session_service(config, build_executor(config)))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", loop=loop)
    )
    threading.Timer(1.0, lambda: print(f"READY http://127.0.0.1:{port}", flush=True)).start()
    server.run()


def start_server(
    loop: str, data: Path, sources: Path, path: str, sandbox: str = "default"
) -> tuple[subprocess.Popen[str], str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PATH": path,
        "WORKSPACE_SOURCE_REPO_ROOTS": str(sources),
    }
    process = subprocess.Popen(
        [sys.executable, __file__, "serve", loop, str(free_port()), str(data), sandbox],
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


def time_call(http: httpx.Client, url: str, args: dict[str, object], check: str) -> float:
    """Seconds for one invocation, which must answer 200 with `check` in its answer."""
    began = time.perf_counter()
    response = http.post(url, json={"args": args})
    elapsed = time.perf_counter() - began
    payload = response.json()
    if response.status_code != 200:
        raise RuntimeError(f"{url} answered {response.status_code}: {payload}")
    if check not in json.dumps(payload):
        raise RuntimeError(f"{url}: {check!r} not in the answer")
    return elapsed


def time_http(
    http: httpx.Client, url: str, args: dict[str, object], count: int, check: str
) -> list[float]:
    samples = []
    for index in range(count + max(3, count // 10)):
        elapsed = time_call(http, url, args, check)
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


SANDBOX_MODES = ("bubblewrap", "none")
NO_CGROUP = "bubblewrap-no-pids-cgroup"


def sandbox_modes() -> tuple[str, ...]:
    """On and off; as root also on without the pids cgroup that root needs for the limit."""
    return (*SANDBOX_MODES, NO_CGROUP) if os.geteuid() == 0 else SANDBOX_MODES


COMMAND_TOOL_GOAL_MS = 5.0


def time_http_alternating(
    http: httpx.Client, urls: dict[str, str], args: dict[str, object], count: int, check: str
) -> dict[str, list[float]]:
    """One call to each URL in turn, `count` rounds after warm-up: both sides see the same load."""
    samples: dict[str, list[float]] = {key: [] for key in urls}
    warm_up = max(3, count // 10)
    for index in range(count + warm_up):
        order = list(urls.items()) if index % 2 == 0 else list(reversed(urls.items()))
        for key, url in order:
            elapsed = time_call(http, url, args, check)
            if index >= warm_up:
                samples[key].append(elapsed)
    return samples


def measure_sandbox(
    options: argparse.Namespace, root: Path, path: str
) -> dict[str, dict[str, list[float]]]:
    """git.status, repo.test and fs.stat over HTTP (uvloop), sandbox on and off, alternating."""
    git_source, project_source = make_sources(root / "sandbox-sources")
    servers: dict[str, tuple[subprocess.Popen[str], str]] = {}
    try:
        for mode in sandbox_modes():
            servers[mode] = start_server(
                "auto", root / f"data-sandbox-{mode}", root / "sandbox-sources", path, mode
            )
        results: dict[str, dict[str, list[float]]] = {}
        with httpx.Client(timeout=120) as http:
            git_urls: dict[str, str] = {}
            test_urls: dict[str, str] = {}
            stat_urls: dict[str, str] = {}
            status_tool = "git.status"
            for mode, (_, base) in servers.items():
                git_session = open_session(http, base, git_source)
                test_session = open_session(http, base, project_source)
                if "git.status" not in tool_names(http, base, git_session):
                    status_tool = "repo.changed_files"
                invoke = f"{base}/v1/sessions/{{}}/tools/{{}}/invoke"
                git_urls[mode] = invoke.format(git_session, status_tool)
                test_urls[mode] = invoke.format(test_session, "repo.test")
                stat_urls[mode] = invoke.format(git_session, "fs.stat")
            results[status_tool] = time_http_alternating(
                http, git_urls, {}, options.git_requests, "module_3.py"
            )
            results["repo.test"] = time_http_alternating(
                http, test_urls, {}, options.test_requests, "3 passed"
            )
            results["fs.stat"] = time_http_alternating(
                http, stat_urls, {"path": "notes.txt"}, options.git_requests, "notes.txt"
            )
        return results
    finally:
        for server, _ in servers.values():
            stop_server(server)


def spawn_variants(scratch: Path) -> tuple[dict[str, list[str]], ProcessCgroups | None]:
    """`true` started bare, through the limits prologue alone, and through Sandbox.wrap() and
    pieces of it; with the pids cgroup the service uses when it runs as root."""
    for name in ("repo", "home", "tmp"):
        (scratch / name).mkdir(parents=True, exist_ok=True)
    sandbox = Sandbox(mode="bubblewrap")
    offline = Mounts(scratch / "repo", scratch / "home", scratch / "tmp", network=False)
    online = Mounts(scratch / "repo", scratch / "home", scratch / "tmp", network=True)
    full = sandbox.wrap(["true"], cwd=offline.workspace, mounts=offline)
    separator = full.index("--")
    prologue = full[separator + 1 :]  # /bin/sh -c <limits> sh true
    namespaces = [arg for arg in full[:separator] if arg.startswith("--unshare")]
    variants = {
        "bare true (subprocess.run)": ["true"],
        "sh limits prologue + true, no bwrap": prologue,
        "bwrap, no namespaces, / bound": [sandbox.bwrap, "--dev-bind", "/", "/", "true"],
        "bwrap, namespaces only, / bound": [
            sandbox.bwrap,
            *namespaces,
            "--dev-bind",
            "/",
            "/",
            "true",
        ],
        "Sandbox.wrap() without the prologue": [*full[: separator + 1], "true"],
        "Sandbox.wrap() without the toolchain binds": Sandbox(
            mode="bubblewrap", toolchain_dirs=[]
        ).wrap(["true"], cwd=offline.workspace, mounts=offline),
        "Sandbox.wrap(), network=True (no --unshare-net)": sandbox.wrap(
            ["true"], cwd=online.workspace, mounts=online
        ),
        "Sandbox.wrap() (as the service, network off)": full,
        "Sandbox.wrap() behind the `sh` cgroup-join prefix, no cgroup": [
            "/bin/sh",
            "-c",
            JOIN_CGROUP,
            "/dev/null",
            *full,
        ],
    }
    cgroups = None
    if os.geteuid() == 0:
        try:
            cgroups = ProcessCgroups.discover(SandboxLimits().processes)
        except SandboxUnavailable as exc:
            print(f"no pids cgroup: {exc}")
    return variants, cgroups


CGROUP_VARIANT = "Sandbox.wrap() + pids cgroup create/join/remove (root)"
CGROUP_TRUE = "sh cgroup join + true, no bwrap (root)"
CGROUP_CREATE = "  of which ProcessCgroups.create()"
CGROUP_REMOVE = "  of which ProcessCgroups.remove()"


def measure_spawn(count: int, scratch: Path) -> dict[str, list[float]]:
    variants, cgroups = spawn_variants(scratch)
    env = {"PATH": os.environ["PATH"], "HOME": str(scratch / "home")}
    sandbox = Sandbox(mode="bubblewrap")
    mounts = Mounts(scratch / "repo", scratch / "home", scratch / "tmp", network=False)
    samples: dict[str, list[float]] = {name: [] for name in variants}
    if cgroups is not None:
        samples[CGROUP_TRUE] = []
        samples[CGROUP_VARIANT] = []
        samples[CGROUP_CREATE] = []
        samples[CGROUP_REMOVE] = []
    warm_up = max(3, count // 10)
    for index in range(count + warm_up):
        for name in samples:
            if name in (CGROUP_CREATE, CGROUP_REMOVE):
                continue  # timed as part of CGROUP_VARIANT
            began = time.perf_counter()
            if name in (CGROUP_VARIANT, CGROUP_TRUE):
                assert cgroups is not None
                cgroup = cgroups.create()
                created = time.perf_counter()
                argv = sandbox.wrap(["true"], cwd=mounts.workspace, mounts=mounts, cgroup=cgroup)
                if name == CGROUP_TRUE:
                    argv = [*argv[: argv.index(sandbox.bwrap)], "true"]
                done = subprocess.run(argv, cwd=scratch, env=env, capture_output=True, check=False)
                exited = time.perf_counter()
                cgroups.remove(cgroup)
                if index >= warm_up and name == CGROUP_VARIANT:
                    samples[CGROUP_CREATE].append(created - began)
                    samples[CGROUP_REMOVE].append(time.perf_counter() - exited)
            else:
                done = subprocess.run(
                    variants[name], cwd=scratch / "repo", env=env, capture_output=True, check=False
                )
            elapsed = time.perf_counter() - began
            if done.returncode != 0:
                raise RuntimeError(f"{name} exited {done.returncode}: {done.stderr!r}")
            if index >= warm_up:
                samples[name].append(elapsed)
    return samples


def report_sandbox(results: dict[str, dict[str, list[float]]]) -> None:
    on, off = SANDBOX_MODES
    print("\nSandbox on (bubblewrap) vs off (none), http/uvloop, alternating calls:\n")
    print("| tool | mode | p50 / p99 ms | over off p50 / p99 ms | goal (+5 ms p50) |")
    print("|---|---|---|---|---|")
    for tool, samples in results.items():
        base50, base99 = percentile(samples[off], 0.5), percentile(samples[off], 0.99)
        for mode, values in samples.items():
            p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
            goal = ""
            if mode == on:
                met = p50 - base50 <= COMMAND_TOOL_GOAL_MS
                goal = "n/a (no child)" if tool == "fs.stat" else ("met" if met else "NOT met")
            print(
                f"| {tool} | {mode} | {p50:.2f} / {p99:.2f} | "
                f"{p50 - base50:+.2f} / {p99 - base99:+.2f} | {goal} |"
            )


def report_spawn(samples: dict[str, list[float]], count: int) -> None:
    print(f"\nSandbox start cost: `true`, {count} runs each, round-robin, subprocess.run:\n")
    print("| how | p50 / p99 ms | over bare true p50 ms |")
    print("|---|---|---|")
    bare = percentile(next(iter(samples.values())), 0.5)
    for name, values in samples.items():
        p50 = percentile(values, 0.5)
        print(f"| {name} | {p50:.2f} / {percentile(values, 0.99):.2f} | {p50 - bare:+.2f} |")


def main() -> None:
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]), (sys.argv[5:6] or [None])[0])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--git-requests", type=int, default=100, help="git.status/fs.stat calls")
    parser.add_argument("--test-requests", type=int, default=20, help="repo.test calls")
    parser.add_argument(
        "--spawn-requests", type=int, default=200, help="`true` starts per sandbox variant"
    )
    parser.add_argument("--skip-ways", action="store_true", help="only the sandbox measurements")
    parser.add_argument(
        "--skip-sandbox", action="store_true", help="only the four ways (no sandbox on/off)"
    )
    options = parser.parse_args()
    # The service's PATH starts with this interpreter's bin directory (the project venv, which
    # has pytest), so `python3 -m pytest` means the same to the tool and to the baseline.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ["PATH"] = path  # for the in-process executor's children too
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-tools-") as scratch:
        if not options.skip_ways:
            rows, floors = measure(options, Path(scratch), path)
            print(
                f"\n{options.git_requests} {rows[0].tool} and {options.test_requests} repo.test "
                "calls per way, one at a time, after warm-up:\n"
            )
            report(rows, floors)
        if not options.skip_sandbox:
            report_sandbox(measure_sandbox(options, Path(scratch), path))
            report_spawn(
                measure_spawn(options.spawn_requests, Path(scratch) / "spawn"),
                options.spawn_requests,
            )
    print(f"\n(whole run: {time.monotonic() - began:.0f} s; load average {os.getloadavg()})")


if __name__ == "__main__":
    main()
