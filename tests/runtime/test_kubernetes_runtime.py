"""The Kubernetes runtime (`serve_app/runtime/kubernetes.py`): every operation through pod exec.

Two kinds of pod stand in for a runner pod:

- `emulator`: a pod of the test Kubernetes emulator (`tests/support/kube.py`), reached by the
  official client over HTTP and the WebSocket exec protocol; the emulator runs each exec in a
  bubblewrap sandbox with the pod's directory at `/workspace`. It does not model scheduling,
  image pulls, real RBAC, the kubelet or a container runtime: the commands are the host's (GNU
  coreutils and dash), not the runner image's BusyBox.
- `busybox`: the same runtime with the exec transport replaced by a local process
  (`SubprocessExec`) whose PATH puts BusyBox applets first, so the scripts run with BusyBox
  `sh`, `stat`, `find`, `tar`… as in an Alpine runner image. No API server, no WebSocket; skipped
  unless a `busybox` binary is found (PATH or `WORKSPACE_TEST_BUSYBOX`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import selectors
import shutil
import stat
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from serve_app.domain.errors import ErrorCode, ServiceError
from serve_app.domain.models import Runtime, Session
from serve_app.domain.paths import WorkspacePath
from serve_app.execution.executor import ExecutionService
from serve_app.runtime.kubernetes import (
    KubernetesRuntime,
    parse_stat,
)
from serve_app.runtime.local_files import LocalFiles
from serve_app.runtime.pod_exec import (
    V4,
    ExecCancel,
    ExecDeadline,
    PodExec,
    PodTarget,
    exit_code,
)
from serve_app.runtime.sandbox import Sandbox
from serve_app.tools import build_registry
from tests.conftest import TEST_GIT_SCHEMES
from tests.support.execution import make_session
from tests.support.processes import none_left_with_argument, unique_seconds

POD_WORKDIR = "/workspace/repo"
CONTAINER = "runner"
BUSYBOX_APPLETS = [
    *("sh", "cat", "head", "stat", "find", "xargs", "mv", "cp", "rm", "mkdir", "readlink"),
    *("wc", "tar", "timeout", "env", "chmod", "mktemp", "printf", "test", "sleep", "ls"),
    *("sort", "tr", "true", "false", "echo"),
]


# pods -------------------------------------------------------------------------------------------


class SubprocessStream:
    """An exec as a local process: its stdout and stderr as frames, its exit as a v1.Status."""

    def __init__(self, process: subprocess.Popen[bytes], deadline: float) -> None:
        self._process = process
        self._deadline = deadline
        self.status: dict[str, Any] | None = None

    @property
    def exit_code(self) -> int | None:
        return exit_code(self.status)

    def frames(self) -> Iterator[tuple[int, bytes]]:
        assert self._process.stdout is not None and self._process.stderr is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._process.stdout, selectors.EVENT_READ, 1)
            selector.register(self._process.stderr, selectors.EVENT_READ, 2)
            while selector.get_map():
                remaining = self._deadline - time.monotonic()
                if remaining <= 0:
                    raise ExecDeadline()
                for key, _ in selector.select(remaining):
                    data = os.read(key.fd, 65536)
                    if not data:
                        selector.unregister(key.fileobj)
                        continue
                    yield key.data, data
        code = self._process.wait()
        code = code if code >= 0 else 128 - code
        self.status = (
            {"status": "Success"}
            if code == 0
            else {
                "status": "Failure",
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
            }
        )


class SubprocessExec:
    """`PodExec` with the exec run as a local process group (killed when the stream closes)."""

    def __init__(self, cwd: str, env: Mapping[str, str]) -> None:
        self.target = PodTarget("local", "subprocess", CONTAINER)
        self._cwd = cwd
        self._env = dict(env)

    @contextlib.contextmanager
    def open(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None,
        deadline: float,
        cancel: ExecCancel | None = None,
    ) -> Iterator[SubprocessStream]:
        process = subprocess.Popen(
            list(argv),
            cwd=self._cwd,
            env=self._env,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        if stdin is not None and process.stdin is not None:
            pipe = process.stdin

            def feed() -> None:
                with contextlib.suppress(OSError):
                    pipe.write(stdin)
                with contextlib.suppress(OSError):
                    pipe.close()

            threading.Thread(target=feed, daemon=True).start()
        try:
            yield SubprocessStream(process, deadline)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 9)
            process.wait()
            for pipe_end in (process.stdout, process.stderr):
                if pipe_end is not None:
                    pipe_end.close()


def busybox_binary() -> str | None:
    return os.environ.get("WORKSPACE_TEST_BUSYBOX") or shutil.which("busybox")


def busybox_path(root: Path) -> str:
    """A PATH with BusyBox applets first (then the host's, for git and other toolchains)."""
    binary = busybox_binary()
    if binary is None:
        pytest.skip("no busybox binary (PATH or WORKSPACE_TEST_BUSYBOX)")
    applets = root / "busybox-applets"
    applets.mkdir(parents=True, exist_ok=True)
    for applet in BUSYBOX_APPLETS:
        link = applets / applet
        if not link.exists():
            link.symlink_to(binary)
    return f"{applets}:{os.environ.get('PATH', '/usr/bin:/bin')}"


@dataclass
class Pod:
    """A runner pod for a test: where its workspace is on the host, and how to reach it."""

    kind: str
    host_workspace: Path
    workdir: str
    make_exec: Callable[[], Any]
    namespace: str = "default"
    name: str = "subprocess"
    api: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def session(self, allowed_paths: list[str] | None = None) -> Session:
        base = make_session(self.host_workspace, allowed_paths)
        runtime = Runtime(
            kind="kubernetes",
            namespace=self.namespace,
            pod_name=self.name,
            container=CONTAINER,
            workdir=self.workdir,
        )
        return base.model_copy(update={"runtime": runtime, "workspace_path": self.workdir})

    def runtime(
        self, allowed_paths: list[str] | None = None, *, deadline: float | None = None
    ) -> KubernetesRuntime:
        return KubernetesRuntime(
            self.session(allowed_paths),
            self.make_exec(),
            workdir=self.workdir,
            blocking=_in_thread,
            deadline=deadline,
            git_protocols=TEST_GIT_SCHEMES,
        )

    def executor(self) -> ExecutionService:
        registry = build_registry()
        sandbox = Sandbox(git_protocols=tuple(TEST_GIT_SCHEMES))
        if self.api is not None:
            return ExecutionService(registry, sandbox=sandbox, kube=lambda: self.api)
        return _SubprocessExecutor(registry, sandbox, self)


class _SubprocessExecutor(ExecutionService):
    """The executor with runner-pod sessions served through `SubprocessExec`."""

    def __init__(self, registry: Any, sandbox: Sandbox, pod: Pod) -> None:
        super().__init__(registry, sandbox=sandbox)
        self._pod = pod

    def _pod_runtime(self, session: Session, deadline: float) -> KubernetesRuntime:
        return KubernetesRuntime(
            session,
            self._pod.make_exec(),
            workdir=self._pod.workdir,
            blocking=self._blocking,
            deadline=deadline,
            git_protocols=self.sandbox.git_protocols,
        )


async def _in_thread(function: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(function)


def busybox_pod(tmp_path: Path) -> Pod:
    path = busybox_path(tmp_path)
    workspace = tmp_path / "pod" / "repo"
    workspace.mkdir(parents=True)
    env = {"PATH": path, "HOME": str(tmp_path / "pod" / "home"), "LANG": "C.UTF-8"}
    return Pod(
        kind="busybox",
        host_workspace=workspace,
        workdir=str(workspace),
        make_exec=lambda: SubprocessExec(str(workspace), env),
    )


def emulator_pod(cluster: Any, namespace: str = "default") -> Pod:
    """A pod of the emulator with the runner container, Ready, its workdir made."""
    from kubernetes import client

    name = f"ws-test-{uuid.uuid4().hex[:10]}"
    api = cluster.api_client()
    core = client.CoreV1Api(api)
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "workspace-session"}},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": CONTAINER,
                    "image": "docker.io/library/alpine:3.20",
                    "command": ["sh", "-lc", "sleep infinity"],
                    "workingDir": POD_WORKDIR,
                }
            ],
        },
    }
    core.create_namespaced_pod(namespace, body)
    deadline = time.monotonic() + 30
    while True:
        pod = core.read_namespaced_pod(name, namespace)
        conditions = (pod.status and pod.status.conditions) or []
        if any(c.type == "Ready" and c.status == "True" for c in conditions):
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"pod {name} did not become Ready")
        time.sleep(0.05)
    workspace = Path(cluster.pod_root(namespace, name)) / "repo"
    workspace.mkdir(parents=True, exist_ok=True)
    target = PodTarget(namespace, name, CONTAINER)
    return Pod(
        kind="emulator",
        host_workspace=workspace,
        workdir=POD_WORKDIR,
        make_exec=lambda: PodExec(api, target),
        namespace=namespace,
        name=name,
        api=api,
    )


def make_pod(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> Pod:
    if kind == "busybox":
        return busybox_pod(tmp_path)
    try:
        cluster = request.getfixturevalue("kube_cluster")
    except pytest.FixtureLookupError:
        pytest.skip("the Kubernetes emulator (kube_cluster) is not available")
    return emulator_pod(cluster)


@pytest.fixture(params=["emulator", "busybox"])
def pod(request: pytest.FixtureRequest, tmp_path: Path) -> Pod:
    return make_pod(request, request.param, tmp_path)


@pytest.fixture
def emulated(request: pytest.FixtureRequest, tmp_path: Path) -> Pod:
    return make_pod(request, "emulator", tmp_path)


async def denied(call: Any, code: ErrorCode = ErrorCode.POLICY_DENIED) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        await call
    assert caught.value.code == code, caught.value
    return caught.value


# pure parts -------------------------------------------------------------------------------------


def test_parse_stat_reads_records_and_names_with_spaces_and_newlines() -> None:
    output = (
        b"81a4 5 1700000000 2023-11-14 22:13:20.123456789 +0000 ./a b.txt\n"
        b"41ed 4096 1700000001 2023-11-14 22:13:21.000000000 +0000 ./odd\nname\n"
        b"a1ff 3 1700000002 2023-11-14 22:13:22 +0000 ./link\n"
    )
    records = dict(parse_stat(output))
    assert set(records) == {"a b.txt", "odd\nname", "link"}
    assert records["a b.txt"].kind == "file"
    assert records["a b.txt"].mode == 0o644
    assert records["a b.txt"].size_bytes == 5
    assert records["a b.txt"].modified_at == 1700000000 + 123456789 * 1e-9
    assert records["odd\nname"].kind == "dir"
    assert records["link"].kind == "symlink"
    assert records["link"].modified_at == 1700000002


def test_exit_code_from_status() -> None:
    assert exit_code({"status": "Success"}) == 0
    failure = {
        "status": "Failure",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": "42"}]},
    }
    assert exit_code(failure) == 42
    assert exit_code({"status": "Failure", "message": "container not found"}) is None
    assert exit_code(None) is None


# files ------------------------------------------------------------------------------------------


def tree(root: Path) -> None:
    (root / "b.txt").write_text("hello\nworld\n")
    (root / "a" / "deep").mkdir(parents=True)
    (root / "a" / "deep" / "x.txt").write_text("x")
    (root / "a" / "z.txt").write_text("z")
    (root / "a" / "-dash.txt").write_text("dash")
    (root / ".git" / "objects").mkdir(parents=True)
    (root / ".git" / "config").write_text("[core]\n")
    (root / "with space.txt").write_text("space")
    (root / "link").symlink_to("a")
    os.chmod(root / "b.txt", 0o640)


async def test_listing_and_walk_match_the_local_runtime(pod: Pod, tmp_path: Path) -> None:
    tree(pod.host_workspace)
    local_root = tmp_path / "local" / "repo"
    local_root.mkdir(parents=True)
    tree(local_root)
    local = LocalFiles(local_root, ["."])
    runtime = pod.runtime()
    root = await runtime.resolve(".")
    for recursive, limit, depth in [(False, 100, None), (True, 100, None), (True, 3, None)]:
        mine = await runtime.list_dir(root, recursive=recursive, max_entries=limit, max_depth=depth)
        theirs = local.list_dir(
            local.resolve("."), recursive=recursive, max_entries=limit, max_depth=depth
        )
        assert [(e.path, e.kind, e.size_bytes, e.mode) for e in mine.entries] == [
            (e.path, e.kind, e.size_bytes, e.mode) for e in theirs.entries
        ]
        assert mine.truncated == theirs.truncated
    depth_two = await runtime.list_dir(root, recursive=True, max_entries=100, max_depth=2)
    assert "a/deep/x.txt" not in [e.path for e in depth_two.entries]
    assert "a/deep" in [e.path for e in depth_two.entries]
    walked = await runtime.walk_files(root, max_files=100)
    local_walk = local.walk_files(local.resolve("."), max_files=100)
    assert [e.path for e in walked.entries] == [e.path for e in local_walk.entries]
    assert [e.path for e in walked.entries] == [
        "b.txt",
        "with space.txt",
        "a/-dash.txt",
        "a/z.txt",
        "a/deep/x.txt",
    ]
    only_a = await runtime.walk_files(root, max_files=2, include=lambda p: p.startswith("a/"))
    assert [e.path for e in only_a.entries] == ["a/-dash.txt", "a/z.txt"]
    assert only_a.truncated is True
    single = await runtime.walk_files(await runtime.resolve("b.txt"), max_files=5)
    assert [e.path for e in single.entries] == ["b.txt"]
    flat = await runtime.walk_files(await runtime.resolve("a"), recursive=False, max_files=9)
    assert [e.path for e in flat.entries] == ["a/-dash.txt", "a/z.txt"]


async def test_stat_reports_entries_without_following_symlinks(pod: Pod) -> None:
    tree(pod.host_workspace)
    runtime = pod.runtime()
    info = await runtime.stat(await runtime.resolve("b.txt"))
    assert info is not None
    host = (pod.host_workspace / "b.txt").stat()
    assert (info.path, info.kind, info.size_bytes, info.mode) == ("b.txt", "file", 12, 0o640)
    assert info.modified_at == host.st_mtime
    link = await runtime.stat(await runtime.resolve("link", follow_final=False))
    assert link is not None and link.kind == "symlink"
    directory = await runtime.stat(await runtime.resolve("link"))
    assert directory is not None and directory.kind == "dir" and directory.path == "a"
    assert await runtime.stat(await runtime.resolve("missing/deeper")) is None
    assert await runtime.stat(await runtime.resolve("b.txt/under")) is None
    root = await runtime.stat(await runtime.resolve("."))
    assert root is not None and root.kind == "dir" and root.path == "."


async def test_read_and_write_round_trip_binary_content(pod: Pod) -> None:
    runtime = pod.runtime()
    data = bytes(range(256)) * 40 + b"\x00\n\r\xff"
    target = await runtime.resolve("bin/blob.dat")
    await runtime.write_file(target, data)
    assert (pod.host_workspace / "bin" / "blob.dat").read_bytes() == data
    content = await runtime.read_file(target, max_bytes=len(data))
    assert content.data == data and content.size_bytes == len(data) and not content.truncated
    head = await runtime.read_file(target, max_bytes=10)
    assert head.data == data[:10] and head.truncated
    empty = await runtime.resolve("empty")
    await runtime.write_file(empty, b"")
    assert (await runtime.read_file(empty, max_bytes=5)).data == b""
    assert stat.S_IMODE((pod.host_workspace / "empty").stat().st_mode) == 0o644


async def test_write_keeps_an_existing_mode_and_leaves_no_temporary_file(pod: Pod) -> None:
    (pod.host_workspace / "run.sh").write_text("old")
    os.chmod(pod.host_workspace / "run.sh", 0o750)
    runtime = pod.runtime()
    await runtime.write_file(await runtime.resolve("run.sh"), b"new")
    assert (pod.host_workspace / "run.sh").read_text() == "new"
    assert stat.S_IMODE((pod.host_workspace / "run.sh").stat().st_mode) == 0o750
    await runtime.write_file(await runtime.resolve("run.sh"), b"mode", mode=0o600)
    assert stat.S_IMODE((pod.host_workspace / "run.sh").stat().st_mode) == 0o600
    assert sorted(p.name for p in pod.host_workspace.iterdir()) == ["run.sh"]


async def test_file_errors_have_the_local_codes_and_messages(pod: Pod) -> None:
    tree(pod.host_workspace)
    runtime = pod.runtime()
    missing = await runtime.resolve("nope.txt")
    error = await denied(runtime.read_file(missing, max_bytes=5), ErrorCode.NOT_FOUND)
    assert error.message == "file not found: nope.txt"
    error = await denied(
        runtime.read_file(await runtime.resolve("a"), max_bytes=5), ErrorCode.INVALID_ARGUMENT
    )
    assert error.message == "path is a directory: a"
    error = await denied(
        runtime.write_file(await runtime.resolve("b.txt/x"), b"", create_parents=True),
        ErrorCode.INVALID_ARGUMENT,
    )
    assert error.message == "parent is not a directory: b.txt/x"
    error = await denied(
        runtime.write_file(await runtime.resolve("new/x"), b"", create_parents=False),
        ErrorCode.NOT_FOUND,
    )
    assert error.message == "parent directory does not exist: new/x"
    error = await denied(
        runtime.write_file(await runtime.resolve("a"), b""), ErrorCode.INVALID_ARGUMENT
    )
    assert error.message == "path exists and is not a regular file: a"
    await denied(runtime.write_file(await runtime.resolve("."), b""), ErrorCode.INVALID_ARGUMENT)
    error = await denied(
        runtime.list_dir(await runtime.resolve("b.txt"), max_entries=5),
        ErrorCode.INVALID_ARGUMENT,
    )
    assert error.message == "path is not a directory: b.txt"
    error = await denied(
        runtime.list_dir(await runtime.resolve("gone"), max_entries=5), ErrorCode.NOT_FOUND
    )
    assert error.message == "path not found: gone"
    error = await denied(
        runtime.walk_files(await runtime.resolve("link", follow_final=False), max_files=5),
        ErrorCode.INVALID_ARGUMENT,
    )
    assert error.message == "not a file or directory: link"
    if os.geteuid() != 0:
        os.mkfifo(pod.host_workspace / "fifo")
        await denied(
            runtime.read_file(await runtime.resolve("fifo"), max_bytes=5),
            ErrorCode.INVALID_ARGUMENT,
        )


async def test_symlink_escapes_inside_the_pod_are_refused(pod: Pod) -> None:
    workspace = pod.host_workspace
    (workspace.parent / "outside").mkdir(exist_ok=True)
    (workspace.parent / "outside" / "secret.txt").write_text("secret")
    (workspace / "up").symlink_to("../outside")
    (workspace / "abs").symlink_to("/etc")
    (workspace / "loop").symlink_to("loop")
    (workspace / "chain").symlink_to("up/secret.txt")
    runtime = pod.runtime()
    for path in ("up/secret.txt", "abs/passwd", "chain", "up"):
        error = await denied(runtime.resolve(path))
        assert error.message == "path escapes workspace through a symlink"
    error = await denied(runtime.resolve("../outside/secret.txt"))
    assert error.message == "path escapes workspace"
    # the link itself is inside the workspace
    link = await runtime.resolve("up", follow_final=False)
    assert link.relative == "up"
    assert (await runtime.resolve("loop", follow_final=False)).relative == "loop"
    absolute = await runtime.resolve("/a/../b.txt")
    assert absolute.relative == "b.txt" and absolute.requested == "b.txt"


async def test_allowed_paths_apply_before_and_after_symlinks(pod: Pod) -> None:
    (pod.host_workspace / "src").mkdir()
    (pod.host_workspace / "docs").mkdir()
    (pod.host_workspace / "docs" / "r.md").write_text("r")
    (pod.host_workspace / "src" / "to-docs").symlink_to("../docs")
    runtime = pod.runtime(["src"])
    assert (await runtime.resolve("src/x.py")).relative == "src/x.py"
    error = await denied(runtime.resolve("docs/r.md"))
    assert error.message == "path outside allowed_paths"
    error = await denied(runtime.resolve("src/to-docs/r.md"))
    assert error.message == "path resolves outside allowed_paths through a symlink"


async def test_a_directory_swapped_for_a_symlink_is_refused(pod: Pod) -> None:
    (pod.host_workspace / "d").mkdir()
    (pod.host_workspace / "d" / "f.txt").write_text("f")
    runtime = pod.runtime()
    resolved = await runtime.resolve("d/f.txt")
    shutil.rmtree(pod.host_workspace / "d")
    (pod.host_workspace / "elsewhere").mkdir()
    (pod.host_workspace / "elsewhere" / "f.txt").write_text("other")
    (pod.host_workspace / "d").symlink_to("elsewhere")
    for call in (
        runtime.read_file(resolved, max_bytes=5),
        runtime.stat(resolved),
        runtime.write_file(resolved, b"x"),
        runtime.delete(resolved),
    ):
        error = await denied(call)
        assert error.message.startswith("path changed while in use")
    assert (pod.host_workspace / "elsewhere" / "f.txt").read_text() == "other"


async def test_mkdir_move_copy_delete(pod: Pod) -> None:
    tree(pod.host_workspace)
    runtime = pod.runtime()
    made = await runtime.resolve("m/n")
    assert await runtime.mkdir(made, mode=0o700) is True
    assert stat.S_IMODE((pod.host_workspace / "m" / "n").stat().st_mode) == 0o700
    assert await runtime.mkdir(made) is False
    error = await denied(runtime.mkdir(made, exist_ok=False), ErrorCode.INVALID_ARGUMENT)
    assert error.message == "directory already exists: m/n"
    error = await denied(runtime.mkdir(await runtime.resolve("b.txt")), ErrorCode.INVALID_ARGUMENT)
    assert error.message == "path exists and is not a directory: b.txt"
    error = await denied(
        runtime.mkdir(await runtime.resolve("p/q"), parents=False), ErrorCode.NOT_FOUND
    )
    assert error.message == "parent directory does not exist: p/q"

    async def path(name: str) -> Any:
        return await runtime.resolve(name, follow_final=False)

    await runtime.move(await path("b.txt"), await path("moved/b.txt"))
    assert (pod.host_workspace / "moved" / "b.txt").read_text() == "hello\nworld\n"
    error = await denied(
        runtime.move(await path("moved/b.txt"), await path("a/z.txt")), ErrorCode.INVALID_ARGUMENT
    )
    assert error.message == "destination exists: a/z.txt"
    await runtime.move(await path("moved/b.txt"), await path("a/z.txt"), overwrite=True)
    assert (pod.host_workspace / "a" / "z.txt").read_text() == "hello\nworld\n"
    error = await denied(
        runtime.move(await path("a"), await path("a/inner")), ErrorCode.INVALID_ARGUMENT
    )
    assert error.message == "destination is inside the source"
    error = await denied(runtime.move(await path("gone"), await path("x")), ErrorCode.NOT_FOUND)
    assert error.message == "source not found: gone"
    await denied(runtime.move(await path("."), await path("x")))

    assert await runtime.copy(await path("a"), await path("a2"), recursive=True) == "dir"
    assert (pod.host_workspace / "a2" / "deep" / "x.txt").read_text() == "x"
    assert await runtime.copy(await path("a/z.txt"), await path("c/z.txt")) == "file"
    error = await denied(
        runtime.copy(await path("a"), await path("a3")), ErrorCode.INVALID_ARGUMENT
    )
    assert error.message == "source is a directory; set recursive=true: a"
    error = await denied(
        runtime.copy(await path("link"), await path("l2")), ErrorCode.INVALID_ARGUMENT
    )
    assert error.message == "fs.copy does not copy symlinks: link"
    error = await denied(
        runtime.copy(await path("a/z.txt"), await path("c/z.txt")), ErrorCode.INVALID_ARGUMENT
    )
    assert error.message == "destination exists: c/z.txt"
    (pod.host_workspace / "a2" / "inner-link").symlink_to("deep")
    await runtime.copy(await path("a2"), await path("a4"), recursive=True)
    assert not (pod.host_workspace / "a4" / "inner-link").exists()
    leftovers = [p.name for p in pod.host_workspace.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []

    assert await runtime.delete(await path("c/z.txt")) is True
    error = await denied(runtime.delete(await path("a2")), ErrorCode.INVALID_ARGUMENT)
    assert error.message == "path is a directory; set recursive=true: a2"
    assert await runtime.delete(await path("a2"), recursive=True) is True
    assert await runtime.delete(await path("gone"), missing_ok=True) is False
    error = await denied(runtime.delete(await path("gone")), ErrorCode.NOT_FOUND)
    assert error.message == "path not found: gone"
    await denied(runtime.delete(await path(".")))
    assert await runtime.delete(await path("link")) is True
    assert (pod.host_workspace / "a").is_dir()


async def test_search_reads_text_files_in_walk_order(pod: Pod) -> None:
    tree(pod.host_workspace)
    (pod.host_workspace / "bin.dat").write_bytes(b"hello\x00binary")
    (pod.host_workspace / ".git" / "hello").write_text("hello in git")
    long_name = "n" * 150
    (pod.host_workspace / "a" / long_name).write_text("hello long name\r\n")
    (pod.host_workspace / "a" / "big.txt").write_text("x" * 10_000 + "\nhello after\n")
    runtime = pod.runtime()
    root = await runtime.resolve(".")
    result = await runtime.search(
        root, lambda line: "hello" in line, max_results=10, max_text_chars=8
    )
    assert [(m.path, m.line, m.text) for m in result.matches] == [
        ("b.txt", 1, "hello"),
        ("a/big.txt", 2, "hello af"),
        (f"a/{long_name}", 1, "hello lo"),
    ]
    assert result.truncated is False
    cut = await runtime.search(root, lambda line: "hello" in line, max_results=1, max_text_chars=80)
    assert len(cut.matches) == 1 and cut.truncated
    one = await runtime.search(
        await runtime.resolve("b.txt"), lambda line: "o" in line, max_results=5, max_text_chars=80
    )
    assert [m.line for m in one.matches] == [1, 2]


# commands ---------------------------------------------------------------------------------------


async def test_run_combines_output_and_reports_exit_codes(pod: Pod) -> None:
    runtime = pod.runtime()
    result = await runtime.run(
        [
            "sh",
            "-c",
            'echo out; sleep 0.2; echo err >&2; sleep 0.2; echo "$WS_X $1"; exit 7',
            "sh",
            "it's $HOME",
        ],
        timeout=10,
        env={"WS_X": "a b;c"},
    )
    assert result.exit_code == 7
    assert result.output == "out\nerr\na b;c it's $HOME\n"
    assert [line.channel for line in result.logs] == ["stdout", "stderr", "stdout"]
    assert not result.timed_out and not result.truncated
    pwd = await runtime.run(["pwd"], timeout=10)
    assert pwd.output.strip() == pod.workdir
    (pod.host_workspace / "sub").mkdir()
    inside = await runtime.run(["pwd"], cwd=f"{pod.workdir}/sub", timeout=10)
    assert inside.output.strip() == f"{pod.workdir}/sub"
    with pytest.raises(ServiceError) as caught:
        await runtime.run(["pwd"], cwd="/", timeout=10)
    assert caught.value.message == "working directory is outside the workspace"


async def test_run_missing_command_answers_like_the_local_runtime(pod: Pod) -> None:
    runtime = pod.runtime()
    result = await runtime.run(["no-such-command-here"], timeout=10)
    assert (result.exit_code, result.output) == (
        -1,
        "cannot start no-such-command-here: No such file or directory",
    )
    (pod.host_workspace / "script.sh").write_text("#!/bin/sh\necho hi\n")
    denied_result = await runtime.run(["./script.sh"], timeout=10)
    assert (denied_result.exit_code, denied_result.output) == (
        -1,
        "cannot start ./script.sh: Permission denied",
    )
    own = await runtime.run(["sh", "-c", "exit 127"], timeout=10)
    assert own.exit_code == 127


async def test_run_truncates_output_with_the_local_marker(pod: Pod) -> None:
    runtime = pod.runtime()
    result = await runtime.run(
        ["sh", "-c", "i=0; while [ $i -lt 3000 ]; do echo 0123456789; i=$((i+1)); done"],
        timeout=20,
        output_limit=1000,
    )
    assert result.exit_code == 0
    assert result.truncated is True
    assert result.output == "0123456789\n" * 90 + "0123456789" + "\n[output truncated]\n"


async def test_run_feeds_stdin(pod: Pod) -> None:
    runtime = pod.runtime()
    data = b"line one\n\x00binary\xff" * 10_000
    result = await runtime.run(["wc", "-c"], stdin=data, timeout=20)
    assert result.output.strip() == str(len(data))
    echoed = await runtime.run(["cat"], stdin=b"abc", timeout=10)
    assert echoed.output == "abc"
    nothing = await runtime.run(["cat"], timeout=10)
    assert (nothing.exit_code, nothing.output) == (0, "")


async def test_run_timeout_is_124_and_the_process_is_gone(pod: Pod) -> None:
    runtime = pod.runtime()
    seconds = unique_seconds()
    started = time.monotonic()
    result = await runtime.run(["sh", "-c", f"echo started; sleep {seconds}"], timeout=1)
    elapsed = time.monotonic() - started
    assert result.exit_code == 124 and result.timed_out
    assert result.output == "started\n"
    assert elapsed < 5
    assert await none_left_with_argument(seconds), "the sleeping process survived"


async def test_which_and_temp_dir(pod: Pod) -> None:
    runtime = pod.runtime()
    found = await runtime.which("sh")
    assert found is not None and found.endswith("/sh")
    assert await runtime.which("no-such-command-here") is None
    async with runtime.temp_dir("scratch-") as scratch:
        assert scratch.name.startswith("scratch-")
        result = await runtime.run(["sh", "-c", "echo hi > f && cat f"], cwd=scratch, timeout=10)
        assert result.output == "hi\n"
        listed = await runtime.run(["ls", str(scratch)], timeout=10)
        assert listed.output == "f\n"
    gone = await runtime.run(["ls", str(scratch)], timeout=10)
    assert gone.exit_code != 0


# the transport (emulator only) ------------------------------------------------------------------


async def test_exec_over_the_v4_protocol(emulated: Pod) -> None:
    """v4 has no close signal for stdin: the scripts read exactly the bytes sent."""
    target = PodTarget(emulated.namespace, emulated.name, CONTAINER)
    runtime = KubernetesRuntime(
        emulated.session(),
        PodExec(emulated.api, target, protocols=(V4,)),
        workdir=emulated.workdir,
        blocking=_in_thread,
    )
    await runtime.write_file(await runtime.resolve("v4.txt"), b"four")
    assert (emulated.host_workspace / "v4.txt").read_bytes() == b"four"
    result = await runtime.run(["cat"], stdin=b"piped", timeout=10)
    assert (result.exit_code, result.output) == (0, "piped")


async def test_a_missing_pod_is_unavailable(emulated: Pod) -> None:
    target = PodTarget(emulated.namespace, "no-such-pod", CONTAINER)
    runtime = KubernetesRuntime(
        emulated.session(),
        PodExec(emulated.api, target),
        workdir=emulated.workdir,
        blocking=_in_thread,
    )
    error = await denied(runtime.stat(await runtime.resolve(".")), ErrorCode.UNAVAILABLE)
    assert "gone" in error.message


async def test_cancelling_a_call_ends_its_exec(emulated: Pod) -> None:
    runtime = emulated.runtime()
    seconds = unique_seconds()
    task = asyncio.ensure_future(runtime.run(["sleep", seconds], timeout=60))
    await asyncio.sleep(1.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await none_left_with_argument(seconds), "the cancelled command survived"


async def test_the_executor_routes_kubernetes_sessions_to_the_pod(emulated: Pod) -> None:
    (emulated.host_workspace / "hello.txt").write_text("from the pod\n")
    executor = emulated.executor()
    try:
        from tests.support.execution import ok

        output = await ok(executor, emulated.session(), "fs.read_file", {"path": "hello.txt"})
        assert output["content"] == "from the pod\n"
    finally:
        executor.close()


async def test_an_executor_without_kubernetes_answers_unavailable(tmp_path: Path) -> None:
    from tests.support.execution import run

    pod = Pod("none", tmp_path, POD_WORKDIR, make_exec=lambda: None, name="p")
    executor = ExecutionService(build_registry())
    try:
        result = await run(executor, pod.session(), "fs.stat", {"path": "."})
        assert result.error is not None and result.error.code == ErrorCode.UNAVAILABLE
    finally:
        executor.close()


async def test_git_metadata_is_read_in_one_exec_and_forgotten_after_a_change(pod: Pod) -> None:
    """What git_runner reads before each git command (.git, commondir, config, config.worktree)
    comes from one exec; a command (or any change) in the same call makes it read again."""
    (pod.host_workspace / ".git").mkdir()
    (pod.host_workspace / ".git" / "config").write_text("[core]\n\tbare = false\n")
    runtime = pod.runtime()
    opened = count_opens(runtime)

    def entry(name: str) -> WorkspacePath:
        return WorkspacePath(real=PurePosixPath(pod.workdir) / name, relative=name, requested=name)

    git_dir = await runtime.stat(entry(".git"))
    assert git_dir is not None and git_dir.kind == "dir" and git_dir.path == ".git"
    assert await runtime.stat(entry(".git/commondir")) is None
    config = await runtime.stat(entry(".git/config"))
    assert config is not None and config.kind == "file" and config.size_bytes == 21
    content = await runtime.read_file(entry(".git/config"), max_bytes=100)
    assert content.data == b"[core]\n\tbare = false\n"
    assert await runtime.stat(entry(".git/config.worktree")) is None
    assert opened() == 1
    await runtime.run(["sh", "-c", "printf '[x]\\n' >> .git/config"], timeout=10)
    again = await runtime.read_file(entry(".git/config"), max_bytes=100)
    assert again.data.endswith(b"[x]\n")
    assert opened() == 3
    (pod.host_workspace / ".git" / "config").unlink()
    (pod.host_workspace / ".git").rmdir()
    (pod.host_workspace / ".git").write_text("gitdir: /elsewhere\n")
    fresh = pod.runtime()
    as_file = await fresh.stat(entry(".git"))
    assert as_file is not None and as_file.kind == "file"


def count_opens(runtime: KubernetesRuntime) -> Callable[[], int]:
    """How many execs `runtime` has opened since (its transport wrapped)."""
    pod_exec = runtime._pod
    original = pod_exec.open
    count = [0]

    def counted(*args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return original(*args, **kwargs)

    pod_exec.open = counted  # type: ignore[method-assign]
    return lambda: count[0]


@pytest.mark.parametrize("shell", ["host", "busybox"])
def test_the_pods_own_timeout_kills_a_command_whose_stream_stays_open(
    shell: str, tmp_path: Path
) -> None:
    """Where closing the exec stream does not end the command (a kubelet need not kill an
    exec's processes when its client goes), the prologue's `timeout -s KILL` does: run here as a
    plain process that nobody kills."""
    from serve_app.runtime.kubernetes import RUN

    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    if shell == "busybox":
        env["PATH"] = busybox_path(tmp_path)
    workspace = tmp_path / "repo"
    workspace.mkdir()
    seconds = unique_seconds()
    started = time.monotonic()
    completed = subprocess.run(
        [
            *("sh", "-c", RUN, "sh", str(workspace), str(tmp_path / "tmp"), str(workspace)),
            *("1", "-", "1", f"HOME={tmp_path / 'home'}", "sleep", seconds),
        ],
        env=env,
        capture_output=True,
        timeout=20,
        check=False,
    )
    # killed (-9 seen from here: GNU timeout kills its own group too; a pod reports 137)
    assert completed.returncode in (-9, 128 + 9), completed
    assert time.monotonic() - started < 5


async def test_build_executor_reaches_pods_through_the_kubeconfig(
    request: pytest.FixtureRequest, tmp_path: Path, settings: Any
) -> None:
    """`wiring.build_executor` makes the replica's API client from the settings' kubeconfig on
    the first runner-pod call (the emulator ignores the kubeconfig's token: no RBAC)."""
    from serve_app.wiring import build_executor
    from tests.support.execution import ok

    cluster = request.getfixturevalue("kube_cluster")
    pod = emulator_pod(cluster)
    (pod.host_workspace / "via-kubeconfig.txt").write_text("yes\n")
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    executor = build_executor(settings.model_copy(update={"kubeconfig": str(kubeconfig)}))
    try:
        output = await ok(executor, pod.session(), "fs.read_file", {"path": "via-kubeconfig.txt"})
        assert output["content"] == "yes\n"
    finally:
        await executor.aclose()
