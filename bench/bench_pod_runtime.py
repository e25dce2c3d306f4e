"""fs.read_file and git.status through the Kubernetes runtime (a pod of the test emulator, every
operation a WebSocket exec) against the local runtime, side by side in one run.

Both run `ExecutionService.execute` in this process (no HTTP, no records), one call at a time,
alternating local and pod, on the same small repository (20 files, one modified, one
untracked):

  local       the local runtime: file operations in the service, git in a bubblewrap sandbox;
  pod         the Kubernetes runtime against the emulator of tests/support/kube.py: the official
              client's WebSocket exec into a pod whose execs the emulator runs in a bubblewrap
              sandbox of its own (a stand-in kubelet), on this machine.

For the emulator's own cost it times bare execs through the same transport (`PodExec`): `true`
(the exec round trip: upgrade, the emulator's sandbox, the status frame) and the runtime's
`run(["true"])` (plus its `sh` prologue), and it counts the execs each tool call makes.
git.status also runs a third way: the pod without the runtime's read-ahead of git's metadata
(one exec per stat and read that git_runner makes, as a plain implementation would).

    .venv/bin/python bench/bench_pod_runtime.py [--requests 100]
"""

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serve_app.domain.execution import ExecutionRequest
from serve_app.domain.models import Session
from serve_app.execution.executor import ExecutionService
from serve_app.runtime.kubernetes import KubernetesRuntime
from serve_app.runtime.pod_exec import PodExec, PodTarget
from serve_app.runtime.sandbox import Sandbox
from serve_app.tools import build_registry
from tests.runtime.test_kubernetes_runtime import CONTAINER, emulator_pod
from tests.support.execution import make_session, make_workspace
from tests.support.git_repos import init_repo


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def repository(root: Path) -> None:
    files = {f"src/module_{index}.py": f"VALUE = {index}\n" for index in range(18)}
    files["README.md"] = "# bench\n" + "some text\n" * 100
    files["pyproject.toml"] = "[project]\nname = 'bench'\n"
    init_repo(root, files)
    (root / "src" / "module_0.py").write_text("VALUE = 'changed'\n")
    (root / "untracked.txt").write_text("new\n")


Way = tuple[ExecutionService, Session, Callable[[], contextlib.AbstractContextManager[Any]]]


async def timed(
    ways: dict[str, Way], tool: str, args: dict[str, Any], count: int
) -> dict[str, list[float]]:
    """`count` calls of `tool` each way, alternating between the ways (so that a change in the
    machine's load touches all alike), after 3 warm-up calls each."""
    samples: dict[str, list[float]] = {way: [] for way in ways}
    for index in range(count + 3):
        for way, (executor, session, around) in ways.items():
            request = ExecutionRequest(
                invocation_id=f"bench-{way}-{index}",
                tool_name=tool,
                args=args,
                session=session,
                timeout_seconds=30,
            )
            with around():
                started = time.perf_counter()
                result = await executor.execute(request)
                elapsed = (time.perf_counter() - started) * 1000
            if result.error is not None:
                raise SystemExit(f"{tool} ({way}) failed: {result.error}")
            if index >= 3:
                samples[way].append(elapsed)
    return samples


EXECS = [0]


@contextlib.contextmanager
def counting_execs() -> Iterator[None]:
    """Counts `PodExec.open` calls (in EXECS) while active."""
    original = PodExec.open

    def open_counted(self: PodExec, *args: Any, **kwargs: Any) -> Any:
        EXECS[0] += 1
        return original(self, *args, **kwargs)

    PodExec.open = open_counted  # type: ignore[method-assign]
    try:
        yield
    finally:
        PodExec.open = original  # type: ignore[method-assign]


@contextlib.contextmanager
def no_read_ahead() -> Iterator[None]:
    """The runtime without its read-ahead of git's metadata: one exec per stat and read."""
    original = KubernetesRuntime._git_metadata

    async def unknown(*_: Any) -> None:
        return None

    KubernetesRuntime._git_metadata = unknown  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        KubernetesRuntime._git_metadata = original  # type: ignore[method-assign]


def bare_exec(pod_exec: PodExec, argv: list[str]) -> None:
    with pod_exec.open(argv, stdin=None, deadline=time.monotonic() + 30) as stream:
        for _ in stream.frames():
            pass
        if stream.exit_code != 0:
            raise SystemExit(f"{argv} failed: {stream.status}")


def time_blocking(function: Callable[[], None], count: int) -> list[float]:
    samples = []
    for index in range(count + 3):
        started = time.perf_counter()
        function()
        if index >= 3:
            samples.append((time.perf_counter() - started) * 1000)
    return samples


def row(name: str, samples: list[float]) -> str:
    return (
        f"| {name} | {percentile(samples, 0.5):.2f} | {percentile(samples, 0.99):.2f} | "
        f"{statistics.mean(samples):.2f} |"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args()
    count = args.requests

    from tests.support.kube import running_cluster

    with (
        tempfile.TemporaryDirectory() as scratch,
        running_cluster(Path(scratch) / "kube") as cluster,
    ):
        local_workspace = make_workspace(Path(scratch) / "local")
        repository(local_workspace)
        local_session = make_session(local_workspace)
        local = ExecutionService(build_registry(), sandbox=Sandbox())

        pod = emulator_pod(cluster)
        repository(pod.host_workspace)
        pod_session = pod.session()
        remote = pod.executor()
        pod_exec = PodExec(pod.api, PodTarget(pod.namespace, pod.name, CONTAINER))
        runtime = pod.runtime()

        results: dict[str, list[float]] = {}
        execs: dict[str, int] = {}
        for tool, tool_args in (
            ("fs.read_file", {"path": "README.md"}),
            ("git.status", {}),
        ):
            ways: dict[str, Way] = {
                "local": (local, local_session, contextlib.nullcontext),
                "pod": (remote, pod_session, counting_execs),
            }
            if tool == "git.status":
                ways["pod, no read-ahead"] = (remote, pod_session, no_read_ahead)
            for way, values in (await timed(ways, tool, tool_args, count)).items():
                results[f"{tool} {way}"] = values
            execs[tool] = EXECS[0] // (count + 3)
            EXECS[0] = 0
        results["exec `true` (PodExec)"] = await asyncio.to_thread(
            time_blocking, lambda: bare_exec(pod_exec, ["true"]), count
        )

        async def run_true() -> None:
            await runtime.run(["true"], timeout=10)

        samples = []
        for index in range(count + 3):
            started = time.perf_counter()
            await run_true()
            if index >= 3:
                samples.append((time.perf_counter() - started) * 1000)
        results["runtime.run(['true'])"] = samples

        print(f"{count} calls each after 3 warm-up calls, one at a time\n")
        print("| what | p50 ms | p99 ms | mean ms |")
        print("|---|---|---|---|")
        for name, values in results.items():
            print(row(name, values))
        print()
        for tool, number in execs.items():
            local_p50 = percentile(results[f"{tool} local"], 0.5)
            pod_p50 = percentile(results[f"{tool} pod"], 0.5)
            print(
                f"{tool}: {number} execs per call; pod/local p50 {pod_p50 / local_p50:.1f}x "
                f"(+{pod_p50 - local_p50:.1f} ms)"
            )
        local.close()
        remote.close()


if __name__ == "__main__":
    asyncio.run(main())
