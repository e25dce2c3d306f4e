"""A stand-in kubelet: each pod's containers run as bubblewrap sandboxes on this machine.

Per pod, on the host under `<root>/<namespace>/<name>/`:

- `workspace/` is the pod's `/workspace` (an `emptyDir` mounted at `/workspace` is this directory;
  it is bound there even when no volume names it), `tmp/` its `/tmp` (read-only when the
  container has `readOnlyRootFilesystem`), `volumes/<name>/` its other `emptyDir`s and the files
  of its `secret` and `configMap` volumes.
- Every other top-level directory of this machine is bound read-only (so commands run with this
  machine's tools, whatever the image), with the pod's own `/proc`, `/dev` and `/run`. A volume's
  mount point must exist on this machine unless it lies under `/workspace`, `/tmp` or `/run`
  (`/var/run/x` is `/run/x`); otherwise the container fails to start with bwrap's message.
- Every uid of a pod maps to the user running the tests (files keep one owner on the host).

Init containers run one after the other, each in a sandbox of its own (own user, PID, IPC and
UTS namespaces, uid/gid from the security context, every capability dropped). Then each
container starts as one long-lived sandbox running its `command` + `args` (`sleep infinity`
when the spec has neither: the image's entrypoint is unknown). An exec enters that container's
namespaces (`nsenter --user --pid --mount --uts --ipc --root --wd`), as `runc exec` does: the
same filesystem, the same PID namespace as the container and as every other exec into it (a
process group started by one exec can be killed by the next), the container's uid, its
working directory and environment, no capabilities.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import json
import os
import shutil
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.kube.objects import JSON, now

BWRAP = shutil.which("bwrap") or "/usr/bin/bwrap"
NSENTER = shutil.which("nsenter") or "/usr/bin/nsenter"
SETPRIV = "/usr/bin/setpriv"
# Top-level host entries a pod does not see: it has its own.
_NOT_BOUND = frozenset({"proc", "dev", "tmp", "run", "workspace"})
_TERMINAL = frozenset({"Succeeded", "Failed"})
_RETRY_SECONDS = 0.5


@dataclass
class Readiness:
    """How pods become ready; the test may change it at any time (read when a pod is started).

    `delay_seconds`: from create to starting the init containers (scheduling and image pulls).
    `never_ready`: pods stay Pending with their containers waiting (`ContainerCreating`).
    `fail`: pods go to phase Failed instead of starting."""

    delay_seconds: float = 0.2
    never_ready: bool = False
    fail: bool = False


@dataclass
class LogBuffer:
    """A container's output, stdout and stderr interleaved as written, with per-line times."""

    lines: list[tuple[datetime.datetime, bytes]] = field(default_factory=list)
    partial: bytes = b""

    def feed(self, data: bytes) -> None:
        stamp = datetime.datetime.now(datetime.UTC)
        *complete, self.partial = (self.partial + data).split(b"\n")
        self.lines += [(stamp, line + b"\n") for line in complete]

    def close(self) -> None:
        if self.partial:
            self.lines.append((datetime.datetime.now(datetime.UTC), self.partial))
            self.partial = b""

    def render(
        self,
        *,
        tail_lines: int | None = None,
        since_seconds: int | None = None,
        timestamps: bool = False,
        limit_bytes: int | None = None,
    ) -> bytes:
        lines = list(self.lines)
        if self.partial:
            lines.append((datetime.datetime.now(datetime.UTC), self.partial))
        if since_seconds is not None:
            cutoff = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=since_seconds)
            lines = [(t, line) for t, line in lines if t >= cutoff]
        if tail_lines is not None:
            lines = lines[-tail_lines:] if tail_lines > 0 else []
        if timestamps:
            text = b"".join(
                t.strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode() + b" " + line for t, line in lines
            )
        else:
            text = b"".join(line for _, line in lines)
        return text[:limit_bytes] if limit_bytes is not None else text


class ContainerConfigError(Exception):
    """The container cannot be configured yet (missing secret, runAsNonRoot as root, …)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class ContainerRun:
    name: str
    spec: JSON
    init: bool
    state: JSON = field(default_factory=lambda: {"waiting": {"reason": "PodInitializing"}})
    logs: LogBuffer | None = None
    process: asyncio.subprocess.Process | None = None
    ns_pid: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    uid: int = 0
    gid: int = 0
    container_id: str = ""

    @property
    def running(self) -> bool:
        return "running" in self.state

    @property
    def workdir(self) -> str:
        return str(self.spec.get("workingDir") or "/workspace")

    def command(self) -> list[str]:
        argv = [str(a) for a in [*(self.spec.get("command") or []), *(self.spec.get("args") or [])]]
        return argv or ["sleep", "infinity"]

    def status(self) -> JSON:
        started = self.running
        ready = started and not self.init
        entry: JSON = {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": f"stand-in://{self.spec.get('image', '')}" if self.container_id else "",
            "ready": ready,
            "restartCount": 0,
            "started": started,
            "state": self.state,
        }
        if self.container_id:
            entry["containerID"] = self.container_id
        return entry


@dataclass(eq=False)
class ExecProcess:
    """A running exec, so that deleting its pod can end it."""

    process: asyncio.subprocess.Process

    def kill(self) -> None:
        kill_tree(self.process.pid)


def _host_root_binds() -> list[str]:
    binds: list[str] = []
    for entry in sorted(os.scandir("/"), key=lambda e: e.name):
        if entry.name in _NOT_BOUND:
            continue
        if entry.is_symlink():
            binds += ["--symlink", os.readlink(entry.path), entry.path]
        elif entry.is_dir(follow_symlinks=False):
            binds += ["--ro-bind", entry.path, entry.path]
    return binds


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    queue = [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL a process, its process group and every descendant (also those that left the
    group with setsid)."""
    for target in [pid, *_descendants(pid)]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(target, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _read_info(fd: int) -> JSON | None:
    """bwrap's `--info-fd` document (None when it exited first)."""
    data = b""
    try:
        while b"}" not in data:
            chunk = os.read(fd, 4096)
            if not chunk:
                return None
            data += chunk
    finally:
        os.close(fd)
    info: JSON = json.loads(data[: data.index(b"}") + 1])
    return info


def _user_namespace(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/user")
    except OSError:
        return None


StatusWriter = Callable[["PodRuntime", JSON], Awaitable[bool]]
Lookup = Callable[[str, str, str], "JSON | None"]


class Kubelet:
    """Runs the pods of one stand-in cluster."""

    def __init__(
        self, root: Path, readiness: Readiness, write_status: StatusWriter, lookup: Lookup
    ) -> None:
        self.root = root
        self.readiness = readiness
        self.write_status = write_status
        self.lookup = lookup
        self.pods: dict[tuple[str, str], PodRuntime] = {}
        self.root_binds = _host_root_binds()
        self.host_path = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
        self._ips = (f"10.244.{n // 250}.{n % 250 + 2}" for n in range(10**6))
        self._trash = root / ".deleted"
        self._cleanups: set[asyncio.Task[None]] = set()

    def pod_dir(self, namespace: str, name: str) -> Path:
        return self.root / namespace / name

    def start(self, pod: JSON) -> None:
        meta = pod["metadata"]
        key = (meta["namespace"], meta["name"])
        runtime = PodRuntime(self, pod, next(self._ips))
        self.pods[key] = runtime
        runtime.task = asyncio.get_running_loop().create_task(runtime.run())

    def stop(self, namespace: str, name: str) -> None:
        """The pod was deleted: kill everything it runs and remove its filesystem."""
        runtime = self.pods.pop((namespace, name), None)
        if runtime is not None:
            runtime.stop()
            self._track(runtime.finished())
        directory = self.pod_dir(namespace, name)
        if directory.exists():
            self._trash.mkdir(parents=True, exist_ok=True)
            moved = self._trash / f"{namespace}-{name}-{uuid.uuid4().hex[:8]}"
            directory.rename(moved)
            self._track(asyncio.to_thread(remove_tree, moved))

    def _track(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def close(self) -> None:
        """Stop every pod and wait until what they ran has exited."""
        for key in list(self.pods):
            runtime = self.pods.pop(key)
            runtime.stop()
            self._track(runtime.finished())
        while self._cleanups:
            await asyncio.wait(list(self._cleanups), timeout=10)

    def runtime(self, namespace: str, name: str) -> PodRuntime | None:
        return self.pods.get((namespace, name))

    # --- sandboxes -------------------------------------------------------------------------

    def sandbox_argv(
        self, pod: PodRuntime, container: ContainerRun, info_fd: int | None = None
    ) -> list[str]:
        security = container.spec.get("securityContext") or {}
        argv = [
            BWRAP,
            "--unshare-user",
            "--uid",
            str(container.uid),
            "--gid",
            str(container.gid),
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--hostname",
            pod.name[:63],
            "--cap-drop",
            "ALL",
            "--die-with-parent",
            *self.root_binds,
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/run",
            "--ro-bind" if security.get("readOnlyRootFilesystem") else "--bind",
            str(pod.tmp_dir),
            "/tmp",
        ]
        mounts = pod.mounts(container)
        if "/workspace" not in {target for target, _, _ in mounts}:
            argv += ["--bind", str(pod.workspace), "/workspace"]
        for target, source, read_only in mounts:
            argv += ["--ro-bind" if read_only else "--bind", source, target]
        argv += ["--chdir", container.workdir]
        if info_fd is not None:
            argv += ["--info-fd", str(info_fd)]
        return [*argv, "--", *container.command()]

    def exec_argv(self, container: ContainerRun, command: list[str]) -> list[str]:
        argv = [
            NSENTER,
            "--target",
            str(container.ns_pid),
            "--user",
            "--pid",
            "--mount",
            "--uts",
            "--ipc",
            "--preserve-credentials",
            "--root",
            "--wd",
            "--",
        ]
        if container.uid == 0:
            # Root in the container's user namespace: drop what exec would otherwise keep.
            argv += [SETPRIV, "--bounding-set=-all", "--inh-caps=-all", "--"]
        return [*argv, *command]

    def find_executable(self, container: ContainerRun, name: str) -> bool:
        """Whether `name` resolves to an executable in the container (as the runtime's exec
        would find it: a path, or the first match on the container's PATH), looked up through
        `/proc/<pid>/root` (an absolute symlink there resolves on the host, which is the same
        place except under /workspace, /tmp and /run)."""
        root = f"/proc/{container.ns_pid}/root"
        if "/" in name:
            path = name if name.startswith("/") else os.path.join(container.workdir, name)
            return os.access(root + path, os.X_OK) and not os.path.isdir(root + path)
        for directory in container.env.get("PATH", "").split(":"):
            candidate = f"{root}{directory or '.'}/{name}"
            if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
                return True
        return False


def remove_tree(path: Path) -> None:
    """rmtree that also removes what the sandbox left read-only."""

    def retry(function: Callable[..., Any], target: str, _: BaseException) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(target), 0o700)
            os.chmod(target, 0o700)
        with contextlib.suppress(OSError):
            function(target)

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=retry)
    else:
        shutil.rmtree(path, onerror=lambda f, p, e: retry(f, p, e[1]))


class PodRuntime:
    """One pod's containers and their state, from create to delete."""

    def __init__(self, kubelet: Kubelet, pod: JSON, ip: str) -> None:
        meta = pod["metadata"]
        self.kubelet = kubelet
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.uid: str = meta["uid"]
        self.pod = pod
        self.spec: JSON = pod.get("spec") or {}
        self.dir = kubelet.pod_dir(self.namespace, self.name)
        self.workspace = self.dir / "workspace"
        self.tmp_dir = self.dir / "tmp"
        self.ip = ip
        self.inits = {
            c["name"]: ContainerRun(c["name"], c, init=True)
            for c in self.spec.get("initContainers") or []
        }
        self.containers = {
            c["name"]: ContainerRun(c["name"], c, init=False)
            for c in self.spec.get("containers") or []
        }
        self.phase = "Pending"
        self.reason: str | None = None
        self.message: str | None = None
        self.scheduled = False
        self.start_time: str | None = None
        self.conditions: dict[str, JSON] = {}
        self.published_phase = "Pending"
        self.execs: set[ExecProcess] = set()
        self.task: asyncio.Task[None] | None = None
        self.stopped = False
        self._stop_event = asyncio.Event()
        self._waiters: set[asyncio.Task[None]] = set()

    def all_containers(self) -> Iterator[ContainerRun]:
        yield from self.inits.values()
        yield from self.containers.values()

    # --- lifecycle -------------------------------------------------------------------------

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopped meanwhile; whether the pod is still there."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_event.wait(), seconds)
        return not self.stopped

    async def run(self) -> None:
        readiness = self.kubelet.readiness
        if not await self._sleep(readiness.delay_seconds):
            return
        self.scheduled = True
        self.start_time = now()
        if readiness.fail:
            for container in self.containers.values():
                container.state = {
                    "terminated": {
                        "exitCode": 1,
                        "reason": "Error",
                        "startedAt": now(),
                        "finishedAt": now(),
                        "message": "Readiness.fail: the stand-in failed this pod",
                    }
                }
            self.phase, self.reason = "Failed", "StandInFailure"
            self.message = "Readiness.fail is set: the stand-in failed this pod"
            await self.publish()
            return
        for container in self.all_containers():
            container.state = {"waiting": {"reason": "ContainerCreating"}}
        if not await self.publish():
            return
        if readiness.never_ready or not await self.prepare():
            return
        for container in self.inits.values():
            if not await self.run_init(container):
                return
        for container in self.containers.values():
            await self.start_container(container)
            if self.stopped:
                return
        await self.settle()

    async def prepare(self) -> bool:
        """Directories, volumes and the containers' environments, retried while a Secret or
        ConfigMap they need is missing (as the kubelet does)."""
        self.workspace.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.chmod(0o1777)
        reported = None
        while True:
            try:
                self.materialize_volumes()
                for container in self.all_containers():
                    self.configure(container)
                return True
            except ContainerConfigError as problem:
                if problem.message != reported:
                    reported = problem.message
                    for container in self.all_containers():
                        container.state = {
                            "waiting": {"reason": problem.reason, "message": problem.message}
                        }
                    self.message = problem.message
                    if not await self.publish():
                        return False
                if not await self._sleep(_RETRY_SECONDS):
                    return False

    def materialize_volumes(self) -> None:
        for volume in self.spec.get("volumes") or []:
            name = volume["name"]
            target = self.volume_dir(name)
            if "secret" in volume:
                source = volume["secret"]
                secret = self.kubelet.lookup(
                    "secrets", self.namespace, source.get("secretName", "")
                )
                if secret is None and not source.get("optional"):
                    raise ContainerConfigError(
                        "ContainerCreating",
                        f'MountVolume.SetUp failed for volume "{name}" : secret '
                        f'"{source.get("secretName", "")}" not found',
                    )
                data = {k: _b64(v) for k, v in ((secret or {}).get("data") or {}).items()}
                self._write_files(target, data, source)
            elif "configMap" in volume:
                source = volume["configMap"]
                config = self.kubelet.lookup("configmaps", self.namespace, source.get("name", ""))
                if config is None and not source.get("optional"):
                    raise ContainerConfigError(
                        "ContainerCreating",
                        f'MountVolume.SetUp failed for volume "{name}" : configmap '
                        f'"{source.get("name", "")}" not found',
                    )
                data = {k: str(v).encode() for k, v in ((config or {}).get("data") or {}).items()}
                self._write_files(target, data, source)
            else:
                target.mkdir(parents=True, exist_ok=True)

    def volume_dir(self, name: str) -> Path:
        # The volume mounted at /workspace is the pod's workspace directory.
        for container in self.all_containers():
            for mount in container.spec.get("volumeMounts") or []:
                if mount.get("name") == name and mount.get("mountPath", "").rstrip("/") in (
                    "/workspace",
                ):
                    return self.workspace
        return self.dir / "volumes" / name

    @staticmethod
    def _write_files(target: Path, data: Mapping[str, bytes], source: Mapping[str, Any]) -> None:
        target.mkdir(parents=True, exist_ok=True)
        mode = int(source.get("defaultMode", 0o644))
        items = source.get("items")
        chosen = (
            [
                (item["key"], item["path"], int(item.get("mode", mode)))
                for item in items
                if item["key"] in data
            ]
            if items
            else [(key, key, mode) for key in data]
        )
        for key, relative, file_mode in chosen:
            path = target / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data[key])
            path.chmod(file_mode)

    def configure(self, container: ContainerRun) -> None:
        pod_security = self.spec.get("securityContext") or {}
        security = container.spec.get("securityContext") or {}
        container.uid = int(security.get("runAsUser", pod_security.get("runAsUser", 0)))
        container.gid = int(security.get("runAsGroup", pod_security.get("runAsGroup", 0)))
        non_root = security.get("runAsNonRoot", pod_security.get("runAsNonRoot", False))
        if non_root and container.uid == 0:
            raise ContainerConfigError(
                "CreateContainerConfigError",
                "container has runAsNonRoot and image will run as root (pod: "
                f'"{self.name}_{self.namespace}({self.uid})", container: {container.name})',
            )
        env = {
            "PATH": self.kubelet.host_path,
            "HOSTNAME": self.name,
            "HOME": "/root" if container.uid == 0 else "/",
        }
        for source in container.spec.get("envFrom") or []:
            prefix = source.get("prefix", "")
            for kind, plural in (("configMapRef", "configmaps"), ("secretRef", "secrets")):
                if kind in source:
                    ref = source[kind]
                    found = self.kubelet.lookup(plural, self.namespace, ref.get("name", ""))
                    if found is None and not ref.get("optional"):
                        raise ContainerConfigError(
                            "CreateContainerConfigError",
                            f"{'secret' if plural == 'secrets' else 'configmap'} "
                            f'"{ref.get("name", "")}" not found',
                        )
                    values = (found or {}).get("data") or {}
                    for key, value in values.items():
                        decoded = _b64(value).decode() if plural == "secrets" else str(value)
                        env[prefix + key] = decoded
        for variable in container.spec.get("env") or []:
            env[variable["name"]] = self._env_value(variable)
        container.env = env
        self._ensure_workdir(container)

    def _env_value(self, variable: Mapping[str, Any]) -> str:
        if "valueFrom" not in variable:
            return str(variable.get("value", ""))
        source = variable["valueFrom"]
        if "fieldRef" in source:
            return self._field(source["fieldRef"].get("fieldPath", ""))
        for kind, plural in (("secretKeyRef", "secrets"), ("configMapKeyRef", "configmaps")):
            if kind in source:
                ref = source[kind]
                found = self.kubelet.lookup(plural, self.namespace, ref.get("name", ""))
                values = (found or {}).get("data") or {}
                if ref.get("key") not in values:
                    if ref.get("optional"):
                        return ""
                    what = "secret" if plural == "secrets" else "configmap"
                    raise ContainerConfigError(
                        "CreateContainerConfigError",
                        f'{what} "{ref.get("name", "")}" not found'
                        if found is None
                        else f"couldn't find key {ref.get('key')} in {what} "
                        f"{self.namespace}/{ref.get('name', '')}",
                    )
                value = values[ref["key"]]
                return _b64(value).decode() if plural == "secrets" else str(value)
        return ""

    def _field(self, path: str) -> str:
        meta = self.pod.get("metadata") or {}
        if path.startswith("metadata.labels['") or path.startswith("metadata.annotations['"):
            group, _, rest = path.partition("['")
            return str((meta.get(group.split(".")[1]) or {}).get(rest.rstrip("']"), ""))
        known: dict[str, str] = {
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "metadata.uid": self.uid,
            "spec.nodeName": "stand-in-node",
            "spec.serviceAccountName": self.spec.get("serviceAccountName", "default"),
            "status.podIP": self.ip,
            "status.hostIP": "127.0.0.1",
        }
        return known.get(path, "")

    def _ensure_workdir(self, container: ContainerRun) -> None:
        """Container runtimes create a missing working directory; do it where the host can."""
        host = self.host_path_of(container, container.workdir)
        if host is not None:
            host.mkdir(parents=True, exist_ok=True)

    def host_path_of(self, container: ContainerRun, path: str) -> Path | None:
        """The host path behind a path inside `container`, when it is on a writable mount."""
        candidates = [(target, Path(source)) for target, source, _ in self.mounts(container)]
        candidates += [("/workspace", self.workspace), ("/tmp", self.tmp_dir)]
        for target, source in sorted(candidates, key=lambda c: -len(c[0])):
            if path == target or path.startswith(target.rstrip("/") + "/"):
                return source / os.path.relpath(path, target)
        return None

    def mounts(self, container: ContainerRun) -> list[tuple[str, str, bool]]:
        """(target, host source, read-only) for the container's volume mounts, parents first."""
        volumes = {v["name"]: v for v in self.spec.get("volumes") or []}
        found: list[tuple[str, str, bool]] = []
        for mount in container.spec.get("volumeMounts") or []:
            volume = volumes.get(mount.get("name", ""))
            if volume is None:
                continue
            source = self.volume_dir(volume["name"])
            if mount.get("subPath"):
                source = source / mount["subPath"]
                source.mkdir(parents=True, exist_ok=True)
            read_only = bool(mount.get("readOnly")) or "secret" in volume or "configMap" in volume
            found.append((_host_target(mount.get("mountPath", "")), str(source), read_only))
        return sorted(found, key=lambda m: m[0].count("/"))

    async def run_init(self, container: ContainerRun) -> bool:
        container.logs = LogBuffer()
        container.container_id = f"stand-in://{uuid.uuid4().hex}"
        started = now()
        container.state = {"running": {"startedAt": started}}
        if not await self.publish():
            return False
        process = await asyncio.create_subprocess_exec(
            *self.kubelet.sandbox_argv(self, container),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=container.env,
            start_new_session=True,
        )
        container.process = process
        if self.stopped:
            kill_tree(process.pid)
        assert process.stdout is not None
        while chunk := await process.stdout.read(65536):
            container.logs.feed(chunk)
        code = _exit_code(await process.wait())
        container.logs.close()
        container.process = None
        terminated: JSON = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": started,
            "finishedAt": now(),
            "containerID": container.container_id,
        }
        if code != 0:
            terminated["message"] = _last_lines(container.logs)
        container.state = {"terminated": terminated}
        if code != 0:
            self.phase = "Failed"
            for main in self.containers.values():
                main.state = {"waiting": {"reason": "PodInitializing"}}
            await self.publish()
            return False
        return await self.publish()

    async def start_container(self, container: ContainerRun) -> None:
        container.logs = LogBuffer()
        container.container_id = f"stand-in://{uuid.uuid4().hex}"
        read_end, write_end = os.pipe()
        try:
            process = await asyncio.create_subprocess_exec(
                *self.kubelet.sandbox_argv(self, container, info_fd=write_end),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=container.env,
                start_new_session=True,
                pass_fds=(write_end,),
            )
        finally:
            os.close(write_end)
        container.process = process
        if self.stopped:
            kill_tree(process.pid)
        started = now()
        info = await asyncio.to_thread(_read_info, read_end)
        if info is not None:
            # The sandbox is up (a failure to set it up still ends the process with bwrap's
            # message in the logs); execs need its namespaces, which may take a moment.
            container.state = {"running": {"startedAt": started}}
            if await _namespaces_ready(int(info["child-pid"]), process):
                container.ns_pid = int(info["child-pid"])
        waiter = asyncio.get_running_loop().create_task(self._watch(container, process, started))
        self._waiters.add(waiter)
        waiter.add_done_callback(self._waiters.discard)
        if container.ns_pid is None:
            await waiter

    async def _watch(
        self, container: ContainerRun, process: asyncio.subprocess.Process, started: str
    ) -> None:
        assert process.stdout is not None and container.logs is not None
        while chunk := await process.stdout.read(65536):
            container.logs.feed(chunk)
        code = _exit_code(await process.wait())
        container.logs.close()
        container.process = None
        container.ns_pid = None
        if self.stopped:
            return
        if "running" in container.state:
            terminated: JSON = {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": started,
                "finishedAt": now(),
                "containerID": container.container_id,
            }
            if code != 0:
                terminated["message"] = _last_lines(container.logs)
        else:
            terminated = {
                "exitCode": 128,
                "reason": "StartError",
                "message": _last_lines(container.logs),
                "startedAt": started,
                "finishedAt": now(),
                "containerID": container.container_id,
            }
        container.state = {"terminated": terminated}
        await self.settle()

    async def settle(self) -> None:
        """Phase from the containers: Running while any runs; when all have ended, Succeeded if
        all exited 0, else Failed (restarts are not modelled)."""
        mains = list(self.containers.values())
        if all("terminated" in c.state for c in mains):
            codes = [c.state["terminated"]["exitCode"] for c in mains]
            self.phase = "Succeeded" if all(code == 0 for code in codes) else "Failed"
        elif any(c.running for c in mains):
            self.phase = "Running"
        await self.publish()

    def stop(self) -> None:
        self.stopped = True
        for container in self.all_containers():
            if container.process is not None and container.process.returncode is None:
                kill_tree(container.process.pid)
        for running in list(self.execs):
            running.kill()
        self._stop_event.set()

    async def finished(self) -> None:
        """Until the lifecycle and every container's process have ended (after `stop`)."""
        while pending := [t for t in (self.task, *self._waiters) if t is not None and not t.done()]:
            await asyncio.wait(pending)

    # --- status ----------------------------------------------------------------------------

    async def publish(self) -> bool:
        if self.stopped:
            return False
        return await self.kubelet.write_status(self, self.status())

    def _condition(self, kind: str, value: bool, reason: str | None = None) -> JSON:
        wanted = "True" if value else "False"
        previous = self.conditions.get(kind)
        if previous is None or previous["status"] != wanted:
            previous = {
                "type": kind,
                "status": wanted,
                "lastProbeTime": None,
                "lastTransitionTime": now(),
            }
            if reason and not value:
                previous["reason"] = reason
            self.conditions[kind] = previous
        return previous

    def status(self) -> JSON:
        mains = list(self.containers.values())
        initialized = all(
            "terminated" in c.state and c.state["terminated"]["exitCode"] == 0
            for c in self.inits.values()
        )
        ready = bool(mains) and all(c.running for c in mains) and self.phase == "Running"
        status: JSON = {"phase": self.phase}
        conditions: list[JSON] = []
        if self.scheduled:
            conditions.append(self._condition("PodScheduled", True))
            conditions.append(
                self._condition("Initialized", initialized, "ContainersNotInitialized")
            )
            conditions.append(self._condition("ContainersReady", ready, "ContainersNotReady"))
            conditions.append(self._condition("Ready", ready, "ContainersNotReady"))
            status.update(
                hostIP="127.0.0.1",
                hostIPs=[{"ip": "127.0.0.1"}],
                podIP=self.ip,
                podIPs=[{"ip": self.ip}],
                startTime=self.start_time,
            )
        status["conditions"] = conditions
        if self.reason:
            status["reason"] = self.reason
        if self.message:
            status["message"] = self.message
        if self.inits:
            status["initContainerStatuses"] = [c.status() for c in self.inits.values()]
        status["containerStatuses"] = [c.status() for c in mains]
        status["qosClass"] = (self.pod.get("status") or {}).get("qosClass", "BestEffort")
        return status


async def _namespaces_ready(pid: int, process: asyncio.subprocess.Process) -> bool:
    """Until the sandbox's pid 1 is in its own user namespace and has started the command
    (bwrap switches namespaces after reporting the pid when it runs as root)."""
    own = _user_namespace("self")
    for _ in range(500):
        if process.returncode is not None:
            return False
        if _user_namespace(pid) not in (own, None) and _descendants(pid):
            return True
        await asyncio.sleep(0.01)
    return False


def _host_target(mount_path: str) -> str:
    """A mount path with the host's symlinked parents resolved (`/var/run/x` → `/run/x`), so
    that bwrap creates the mount point on the pod's own `/run` or `/tmp`."""
    parent, _, name = mount_path.rstrip("/").rpartition("/")
    resolved = os.path.realpath(parent or "/")
    return os.path.join(resolved, name) if name else resolved


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _last_lines(logs: LogBuffer | None, count: int = 5) -> str:
    if logs is None:
        return ""
    return logs.render(tail_lines=count).decode(errors="replace").strip()
