"""The per-call sandbox of the local runtime: every tool process runs in fresh Linux namespaces
(bubblewrap) that see its own session's workspace, HOME and TMP read-write, the toolchains
read-only, and nothing else of the machine: no other session, no service file, no service process,
no network unless the capability declares it, and resource limits from configuration.

Layout inside (paths are the host's, so that tool output names files as the service does):

    /usr, toolchain directories        read-only
    /etc                               a short allowlist of non-secret files, plus a passwd/group
                                       that know only root and the tool user
    /proc, /dev                        the sandbox's own (PID namespace), plus GPU nodes if pinned
    /tmp and <session>/tmp             the session's TMP
    <session>/home, <session>/repo     the session's HOME and workspace

Limits are set inside, before the command starts (`ulimit` in a constant `sh` prologue). The
kernel exempts root from the process-count limit, so when the service runs as root each sandbox
also gets a `pids` cgroup of its own (`ProcessCgroups`), which bounds a fork bomb all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
import resource
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from serve_app.execution.process import child_environment, run_command
from serve_app.runtime.gpu_devices import device_nodes
from serve_app.runtime.interface import DEFAULT_OUTPUT_LIMIT, CommandResult

log = logging.getLogger(__name__)

SandboxMode = Literal["bubblewrap", "none"]
BWRAP_PACKAGE = "bubblewrap"
INSIDE_HOSTNAME = "workspace"
PROBE_TIMEOUT_SECONDS = 10

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# /etc entries a toolchain may read; none of them holds a secret.
ETC_ALLOWLIST = (
    "alternatives",
    "ca-certificates",
    "ca-certificates.conf",
    "debian_version",
    "gai.conf",
    "host.conf",
    "hosts",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "protocols",
    "resolv.conf",
    "services",
    "ssl",
    "timezone",
)
ETC_PREFIXES = ("java-", "python3")
ETC_SOURCE = Path("/etc")
ETC_RECHECK_SECONDS = 5.0
# Exit statuses of a sandboxed command killed by a resource limit (bubblewrap reports 128+signal).
LIMIT_SIGNALS = {128 + 24: "CPU time", 128 + 25: "file size"}
JOIN_CGROUP = 'echo $$ > "$0" && exec "$@"'
CGROUP_PARENT = "workspace-sandbox"


class SandboxUnavailable(RuntimeError):
    """The configured sandbox cannot run on this machine."""


@dataclass(frozen=True)
class SandboxLimits:
    """Per-process limits inside the sandbox (setrlimit); 0 leaves one as inherited."""

    memory_bytes: int = 8 * 1024**3
    processes: int = 512
    file_size_bytes: int = 1024**3
    cpu_seconds: int = 900
    open_files: int = 4096

    def script(self) -> str:
        """A constant `sh` prologue that lowers the limits, then runs "$@" (no interpolation of
        caller input: the command is passed as positional arguments)."""
        hard = {
            "d": _hard(resource.RLIMIT_DATA, 1024),
            "p": _hard(resource.RLIMIT_NPROC, 1),
            "f": _hard(resource.RLIMIT_FSIZE, 512),
            "t": _hard(resource.RLIMIT_CPU, 1),
            "n": _hard(resource.RLIMIT_NOFILE, 1),
        }
        wanted = {
            "d": self.memory_bytes // 1024,
            "p": self.processes,
            "f": self.file_size_bytes // 512,
            "t": self.cpu_seconds,
            "n": self.open_files,
        }
        steps = ["ulimit -c 0"]
        for flag, value in wanted.items():
            if value > 0:
                ceiling = hard[flag]
                steps.append(f"ulimit -{flag} {value if ceiling is None else min(value, ceiling)}")
        return "; ".join([*steps, 'exec "$@"'])


def _hard(limit: int, unit: int) -> int | None:
    value = resource.getrlimit(limit)[1]
    return None if value == resource.RLIM_INFINITY else value // unit


@dataclass(frozen=True)
class Mounts:
    """What one sandboxed command sees besides the system directories."""

    workspace: Path
    home: Path
    tmp: Path
    network: bool
    readonly: tuple[str, ...] = ()
    """More host directories the command may read (a local repository a session clones)."""
    git_protocols: tuple[str, ...] = ()
    """Transports git may use besides the sandbox's own (`file` for such a clone)."""


@dataclass
class Sandbox:
    """Builds the command line that runs argv inside the sandbox; `mode="none"` runs it bare."""

    mode: SandboxMode = "bubblewrap"
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    toolchain_dirs: Sequence[str] | None = None
    """None: derived from the service's environment at each call (`default_toolchain_dirs`)."""
    git_protocols: tuple[str, ...] = ("https",)
    """The transports git may use (`GIT_ALLOW_PROTOCOL`), from WORKSPACE_GIT_ALLOWED_SCHEMES."""
    cgroups: ProcessCgroups | None = None
    dev_root: Path = Path("/dev")
    gpu_proc_root: Path = Path("/proc/driver/nvidia/gpus")
    bwrap: str = "bwrap"

    @functools.cached_property
    def _prologue(self) -> str:
        return self.limits.script()

    @property
    def visible_devices(self) -> str | None:
        """The replica's GPU pinning, which the sandbox exposes: its `CUDA_VISIBLE_DEVICES`."""
        return os.environ.get("CUDA_VISIBLE_DEVICES")

    @property
    def enabled(self) -> bool:
        return self.mode != "none"

    def wrap(
        self, argv: Sequence[str], *, cwd: Path, mounts: Mounts, cgroup: Path | None = None
    ) -> list[str]:
        """The command line that runs `argv` in a new sandbox (inside `cgroup` when given)."""
        if not self.enabled:
            return list(argv)
        prefix: list[str] = []
        if cgroup is not None:
            # Join the cgroup before bubblewrap forks, so that every process inside counts.
            prefix = ["/bin/sh", "-c", JOIN_CGROUP, str(cgroup / "cgroup.procs")]
        command = [
            *prefix,
            self.bwrap,
            "--unshare-user",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            *([] if mounts.network else ["--unshare-net"]),
            # The same ids inside as outside: git compares file owners with its index.
            "--uid",
            str(os.geteuid()),
            "--gid",
            str(os.getegid()),
            "--cap-drop",
            "ALL",
            "--hostname",
            INSIDE_HOSTNAME,
            "--die-with-parent",
            "--new-session",
            *self._system_binds(),
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            *self._device_binds(),
            "--bind",
            str(mounts.tmp),
            "/tmp",
            # After /tmp, so that a toolchain directory under /tmp is not covered by it.
            *_binds("--ro-bind", self._toolchains()),
            *_binds("--ro-bind", mounts.readonly),
            *_binds("--bind", (str(mounts.tmp), str(mounts.home), str(mounts.workspace))),
            # Nothing but the binds above can be written: the sandbox's own root turns read-only.
            "--remount-ro",
            "/",
            "--chdir",
            str(cwd),
            "--",
            "/bin/sh",
            "-c",
            self._prologue,
            "sh",
            *argv,
        ]
        return command

    def environment(self, mounts: Mounts) -> dict[str, str]:
        """The scrubbed environment of a command with these mounts, TMPDIR included."""
        env = child_environment(home=mounts.home, workspace=mounts.workspace)
        env["TMPDIR"] = "/tmp" if self.enabled else str(mounts.tmp)
        # The transports git may use, whatever its configuration says (`ext::` never).
        env["GIT_ALLOW_PROTOCOL"] = ":".join((*self.git_protocols, *mounts.git_protocols))
        return env

    async def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        mounts: Mounts,
        env: Mapping[str, str],
        timeout: float,
        stdin: bytes | None = None,
        output_limit: int = DEFAULT_OUTPUT_LIMIT,
    ) -> CommandResult:
        """Run `argv` in a new sandbox; a command killed by a limit gets a line saying which."""
        cgroup = None
        if self.enabled and self.cgroups is not None:
            # A mkdir and a write: cheaper inline than a hop to a thread.
            cgroup = self.cgroups.create()
        try:
            result = await run_command(
                self.wrap(argv, cwd=cwd, mounts=mounts, cgroup=cgroup),
                cwd=cwd,
                env=env,
                timeout=timeout,
                stdin=stdin,
                output_limit=output_limit,
            )
        finally:
            if cgroup is not None and self.cgroups is not None:
                await asyncio.to_thread(self.cgroups.remove, cgroup)
        note = limit_note(result.exit_code, self.limits) if self.enabled else None
        if note is not None:
            text = f"{result.output.rstrip(chr(10))}\n{note}\n".lstrip()
            result = replace(result, output=text)
        return result

    def _toolchains(self) -> Sequence[str]:
        if self.toolchain_dirs is not None:
            return self.toolchain_dirs
        return _cached_toolchain_dirs(tuple(os.environ.get(name, "") for name in TOOLCHAIN_ENV))

    def sees(self, path: str, mounts: Mounts) -> bool:
        """Whether `path` (a host path) exists at the same place inside the sandbox."""
        if not self.enabled:
            return True
        mounted = (*map(str, (mounts.workspace, mounts.home, mounts.tmp)), *mounts.readonly)
        return _under(os.path.realpath(path), (*SYSTEM_DIRS, *self._toolchains(), *mounted))

    def search_path(self, path: str, mounts: Mounts) -> str:
        """The entries of a PATH value that the sandbox sees (its commands' real search path)."""
        if not self.enabled:
            return path
        mounted = tuple(map(str, (mounts.workspace, mounts.home, mounts.tmp)))
        return _visible_path(path, (*SYSTEM_DIRS, *self._toolchains()), mounted)

    def _system_binds(self) -> list[str]:
        binds: list[str] = []
        for directory in SYSTEM_DIRS:
            path = Path(directory)
            if path.is_symlink():
                binds += ["--symlink", os.readlink(path), directory]
            elif path.is_dir():
                binds += ["--ro-bind", directory, directory]
        return [*binds, "--ro-bind", str(_PREPARED_ETC.get()), "/etc"]

    def _device_binds(self) -> list[str]:
        binds: list[str] = []
        for node in device_nodes(self.visible_devices, self.dev_root, self.gpu_proc_root):
            binds += ["--dev-bind", str(node), f"/dev/{node.name}"]
        if binds and Path("/sys").is_dir():
            # nvidia-smi and CUDA read the driver's PCI view.
            binds += ["--ro-bind", "/sys", "/sys"]
        return binds

    def check(self) -> None:
        """Start one sandbox; raise SandboxUnavailable naming what is missing."""
        if not self.enabled:
            return
        found = shutil.which(self.bwrap)
        if found is None:
            raise SandboxUnavailable(
                f"WORKSPACE_SANDBOX=bubblewrap but `{self.bwrap}` is not installed: install the "
                f"`{BWRAP_PACKAGE}` package (Debian/Ubuntu: apt-get install {BWRAP_PACKAGE}), or "
                "set WORKSPACE_SANDBOX=none to run tools unsandboxed (not for shared use)"
            )
        # Every sandbox of this process starts the binary checked here.
        self.bwrap = found
        scratch = Path(tempfile.mkdtemp(prefix="workspace-sandbox-probe-"))
        try:
            for name in ("repo", "home", "tmp"):
                (scratch / name).mkdir()
            mounts = Mounts(scratch / "repo", scratch / "home", scratch / "tmp", network=False)
            argv = self.wrap(
                ["sh", "-c", "touch ./probe && cat /proc/self/status >/dev/null"],
                cwd=mounts.workspace,
                mounts=mounts,
            )
            try:
                done = subprocess.run(
                    argv,
                    capture_output=True,
                    timeout=PROBE_TIMEOUT_SECONDS,
                    env={"PATH": "/usr/bin:/bin"},
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise SandboxUnavailable(f"bubblewrap could not start a sandbox: {exc}") from exc
            if done.returncode != 0 or not (scratch / "repo" / "probe").exists():
                detail = (done.stderr or done.stdout).decode("utf-8", "replace").strip()
                raise SandboxUnavailable(
                    f"bubblewrap is installed but cannot start a sandbox here "
                    f"(exit {done.returncode}: {detail[:500]}); it needs unprivileged user "
                    "namespaces (kernel.unprivileged_userns_clone=1, and a seccomp/AppArmor "
                    "profile that allows unshare/clone of namespaces) — see docs/SECURITY.md"
                )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def _under(real: str, roots: Iterable[str]) -> bool:
    return any(real == root or real.startswith(root.rstrip("/") + "/") for root in roots)


@functools.lru_cache(maxsize=64)
def _shared_path_entries(path: str, roots: tuple[str, ...]) -> tuple[tuple[str, bool], ...]:
    """Each PATH entry with whether it lies under `roots` (realpath resolved once per value)."""
    return tuple(
        (entry, bool(entry) and _under(os.path.realpath(entry), roots))
        for entry in path.split(os.pathsep)
    )


def _visible_path(path: str, shared: tuple[str, ...], mounted: tuple[str, ...]) -> str:
    kept = [
        entry
        for entry, seen in _shared_path_entries(path, shared)
        if seen or (entry and _under(os.path.realpath(entry), mounted))
    ]
    return os.pathsep.join(kept)


class PreparedEtc:
    """The sandbox's /etc: a copy of the allowlisted entries plus a passwd and group that know
    only root and the service's user, bound once (one bind of a prepared directory costs about
    3 ms less per start than a bind per entry). Kept in a private directory of the service's
    user under the temporary directory, one copy per content, shared by every sandbox and every
    process; whether an entry changed is looked at every ETC_RECHECK_SECONDS at most."""

    def __init__(self, source: Path) -> None:
        self._source = source
        self._path: Path | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def get(self) -> Path:
        with self._lock:
            now = time.monotonic()
            if self._path is None or now - self._checked >= ETC_RECHECK_SECONDS:
                self._checked = now
                self._path = _prepared_etc(self._source, _etc_fingerprint(self._source))
            return self._path


def _etc_entries(source: Path) -> list[os.DirEntry[str]]:
    with os.scandir(source) as scan:
        return sorted(
            (e for e in scan if e.name in ETC_ALLOWLIST or e.name.startswith(ETC_PREFIXES)),
            key=lambda entry: entry.name,
        )


def _etc_fingerprint(source: Path) -> tuple[tuple[str, int], ...]:
    if not source.is_dir():
        return ()
    found = []
    for entry in _etc_entries(source):
        with contextlib.suppress(OSError):
            found.append((entry.name, entry.stat().st_mtime_ns))
    return tuple(found)


def _prepared_etc(source: Path, fingerprint: tuple[tuple[str, int], ...]) -> Path:
    """The copy for this content of `source`, made once: built aside, then renamed into place."""
    uid, gid = os.geteuid(), os.getegid()
    digest = hashlib.sha256(repr((fingerprint, uid, gid)).encode()).hexdigest()[:16]
    base = _private_dir(Path(tempfile.gettempdir()) / f"workspace-sandbox-etc-{uid}")
    final = base / digest
    if final.is_dir():
        return final
    staging = Path(tempfile.mkdtemp(prefix="staging-", dir=base))
    _fill_etc(staging, source)
    try:
        staging.rename(final)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # another process made it first
    return final


def _private_dir(path: Path) -> Path:
    """`path` as a directory only this user can write, or refuse to use it: a shared /tmp must
    not let another user plant the sandbox's /etc."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise SandboxUnavailable(f"{path} is not a private directory of this user; remove it")
    return path


def _fill_etc(directory: Path, source: Path) -> None:
    if source.is_dir():
        for entry in _etc_entries(source):
            real = Path(os.path.realpath(entry.path))
            with contextlib.suppress(OSError):
                if real.is_dir():
                    shutil.copytree(real, directory / entry.name, symlinks=True)
                elif real.is_file():
                    shutil.copy2(real, directory / entry.name)
    uid, gid = os.geteuid(), os.getegid()
    users = ["root:x:0:0:root:/root:/bin/sh"]
    groups = ["root:x:0:"]
    if uid != 0:
        users.append(f"tool:x:{uid}:{gid}:tool:/tmp:/bin/sh")
    if gid != 0:
        groups.append(f"tool:x:{gid}:")
    users.append("nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin")
    groups.append("nogroup:x:65534:")
    (directory / "passwd").write_text("\n".join(users) + "\n")
    (directory / "group").write_text("\n".join(groups) + "\n")
    for name in ("passwd", "group"):
        (directory / name).chmod(0o644)
    directory.chmod(0o755)


def _binds(flag: str, paths: Iterable[str]) -> list[str]:
    result: list[str] = []
    for path in paths:
        result += [flag, path, path]
    return result


def limit_note(exit_code: int, limits: SandboxLimits) -> str | None:
    """A clear line for a command the sandbox's limits killed."""
    what = LIMIT_SIGNALS.get(exit_code)
    if what == "file size":
        return f"[sandbox: file size limit of {limits.file_size_bytes} bytes exceeded]"
    if what == "CPU time":
        return f"[sandbox: CPU time limit of {limits.cpu_seconds} s exceeded]"
    return None


TOOLCHAIN_ENV = ("PATH", "HOME", "RUSTUP_HOME", "GOROOT", "JAVA_HOME", "PYENV_ROOT")


@functools.lru_cache(maxsize=32)
def _cached_toolchain_dirs(values: tuple[str, ...]) -> tuple[str, ...]:
    environ = {name: value for name, value in zip(TOOLCHAIN_ENV, values, strict=True) if value}
    return tuple(default_toolchain_dirs(environ))


def default_toolchain_dirs(environ: Mapping[str, str]) -> list[str]:
    """Read-only toolchain directories when `WORKSPACE_SANDBOX_TOOLCHAIN_DIRS` is not set: every
    PATH directory outside the system directories (a Python environment's whole prefix for its
    `bin`, so that its interpreter finds its libraries), plus RUSTUP_HOME, GOROOT, JAVA_HOME and
    PYENV_ROOT (or ~/.rustup and ~/.pyenv when PATH leads there)."""
    home = environ.get("HOME", "").rstrip("/")
    found: list[str] = []

    def add(candidate: str) -> None:
        if not candidate or not os.path.isabs(candidate):
            return
        real = os.path.realpath(candidate)
        if not os.path.isdir(real) or real in found:
            return
        if any(real == d or real.startswith(d + "/") for d in (*SYSTEM_DIRS, "/etc", "/proc")):
            return
        if real in ("/", home) or real.startswith("/dev/"):
            return
        found.append(real)

    for entry in environ.get("PATH", "").split(":"):
        prefix = os.path.dirname(entry.rstrip("/"))
        if os.path.basename(entry.rstrip("/")) == "bin" and _python_prefix(prefix):
            add(prefix)
        elif home and entry.startswith(f"{home}/.pyenv/") and "PYENV_ROOT" not in environ:
            add(f"{home}/.pyenv")
        else:
            add(entry)
    for name in ("RUSTUP_HOME", "GOROOT", "JAVA_HOME", "PYENV_ROOT"):
        add(environ.get(name, ""))
    if home and "RUSTUP_HOME" not in environ:
        add(os.path.join(home, ".rustup"))
    # A directory inside another one already bound adds nothing.
    return [d for d in found if not any(d != o and d.startswith(o + "/") for o in found)]


def _python_prefix(directory: str) -> bool:
    """A virtual environment or conda prefix, whose interpreter needs its whole tree."""
    return any(
        os.path.exists(os.path.join(directory, marker)) for marker in ("pyvenv.cfg", "conda-meta")
    )


class ProcessCgroups:
    """One `pids` cgroup per sandboxed command, under a parent this process owns: the process
    limit for a service running as root (which RLIMIT_NPROC does not bind)."""

    def __init__(self, parent: Path, max_processes: int) -> None:
        self._parent = parent
        self._max = max_processes

    @classmethod
    def discover(cls, max_processes: int, root: Path = Path("/sys/fs/cgroup")) -> ProcessCgroups:
        """The pids hierarchy (cgroup v1 `pids/`, or v2 with the pids controller), or raise
        SandboxUnavailable saying why none can be used."""
        for base in (root / "pids", root / "unified", root):
            if (base / "cgroup.procs").is_file() and _has_pids(base):
                parent = base / CGROUP_PARENT
                try:
                    parent.mkdir(exist_ok=True)
                    if base != root / "pids":
                        _enable_pids(base)
                        _enable_pids(parent)
                except OSError as exc:
                    raise SandboxUnavailable(
                        f"the service runs as root, and root is exempt from the process limit, "
                        f"so each sandbox needs a pids cgroup; {base} is not writable ({exc})"
                    ) from exc
                return cls(parent, max_processes)
        raise SandboxUnavailable(
            "the service runs as root, and root is exempt from the process limit, so each "
            f"sandbox needs a pids cgroup; no pids controller is mounted under {root}"
        )

    def create(self) -> Path:
        path = Path(tempfile.mkdtemp(prefix="call-", dir=self._parent))
        (path / "pids.max").write_text(f"{self._max}\n")
        return path

    def remove(self, path: Path) -> None:
        """Kill whatever is left in the cgroup, then remove it."""
        for _ in range(50):
            try:
                pids = [int(p) for p in (path / "cgroup.procs").read_text().split()]
            except OSError:
                pids = []
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            try:
                path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.01)
        log.warning("could not remove sandbox cgroup %s", path)


def _has_pids(base: Path) -> bool:
    if (base / "pids.max").exists() or base.name == "pids":
        return True
    controllers = base / "cgroup.controllers"
    return controllers.is_file() and "pids" in controllers.read_text().split()


def _enable_pids(directory: Path) -> None:
    control = directory / "cgroup.subtree_control"
    if control.is_file() and "pids" not in control.read_text().split():
        control.write_text("+pids\n")


_PREPARED_ETC = PreparedEtc(ETC_SOURCE)
