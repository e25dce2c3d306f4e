"""Child processes with the safety rules: argument lists, no shell, a scrubbed environment, their
own process group killed on timeout or cancellation, and output kept in a bounded buffer."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from serve_app.domain.models import LogLine, utcnow
from serve_app.runtime.interface import CommandResult

__all__ = ["CommandResult", "child_environment", "run_command"]

TRUNCATION_MARKER = "\n[output truncated]\n"
DEFAULT_OUTPUT_LIMIT = 256 * 1024
MAX_LOG_LINES = 2000
READ_CHUNK = 64 * 1024
KILL_GRACE_SECONDS = 2.0
PIPE_GRACE_SECONDS = 1.0

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Variables a child may inherit from the service: locations of toolchains and the GPU pinning.
# Nothing else crosses over, so service secrets never reach a tool.
PASSTHROUGH_VARIABLES = (
    "PATH",
    "LANG",
    "TZ",
    "CUDA_VISIBLE_DEVICES",
    "NVIDIA_VISIBLE_DEVICES",
    "GOROOT",
    "RUSTUP_HOME",
    "RUSTUP_AUTO_INSTALL",
    "CARGO_HOME",
    "JAVA_HOME",
    "PYENV_ROOT",
)


def child_environment(
    *, home: Path, workspace: Path, service_env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of every tool process: an allowlist, never the service's own environment."""
    source = os.environ if service_env is None else service_env
    env = {name: source[name] for name in PASSTHROUGH_VARIABLES if source.get(name) is not None}
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("LANG", "C.UTF-8")
    if "RUSTUP_HOME" not in env and (rustup_home := _service_rustup_home(source)):
        env["RUSTUP_HOME"] = rustup_home
        env.setdefault("RUSTUP_AUTO_INSTALL", "0")
    if "PYENV_ROOT" not in env and (pyenv_root := _service_pyenv_root(source)):
        # pyenv's shims find their interpreters through PYENV_ROOT, by default under HOME.
        env["PYENV_ROOT"] = pyenv_root
    env.update(
        {
            "HOME": str(home),
            "LC_ALL": "C.UTF-8",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            # Stop git from discovering a repository above the workspace (e.g. the service's own).
            "GIT_CEILING_DIRECTORIES": str(workspace.parent),
            # A .pyc is trusted on source mtime (seconds) and size: an edit that keeps the size
            # within the same second (a patch turning `-` into `+`) would run the old code.
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    return env


def _service_rustup_home(source: Mapping[str, str]) -> str | None:
    """Where rustup's toolchains are when the service does not say: `~/.rustup` of the service's
    own HOME. Children get a per-session HOME, under which rustup's `cargo` proxy finds no
    toolchain. Only RUSTUP_HOME is derived (CARGO_HOME stays per session, so registry downloads
    and `cargo install` never write into the service's home), and unless the service says
    otherwise rustup may not download toolchains into that shared directory."""
    home = source.get("HOME")
    if not home:
        return None
    rustup_home = Path(home) / ".rustup"
    return str(rustup_home) if rustup_home.is_dir() else None


def _service_pyenv_root(source: Mapping[str, str]) -> str | None:
    home = source.get("HOME", "").rstrip("/")
    if not home:
        return None
    root = f"{home}/.pyenv"
    on_path = any(entry.startswith(root + "/") for entry in source.get("PATH", "").split(":"))
    return root if on_path and Path(root).is_dir() else None


class _BoundedOutput:
    """Combined stdout+stderr in arrival order, capped at `limit` bytes; the rest is drained."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.truncated = False
        self.logs: list[LogLine] = []
        self._partial: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}

    def feed(self, channel: str, chunk: bytes) -> None:
        room = self.limit - len(self.data)
        if room > 0:
            self.data += chunk[:room]
            kept = chunk[:room]
            self._collect_lines(channel, kept)
        if len(chunk) > max(room, 0):
            self.truncated = True

    def _collect_lines(self, channel: str, chunk: bytes) -> None:
        buffer = self._partial[channel]
        buffer += chunk
        *complete, rest = bytes(buffer).split(b"\n")
        self._partial[channel] = bytearray(rest)
        for line in complete:
            self._log(channel, line)

    def _log(self, channel: str, line: bytes) -> None:
        if len(self.logs) < MAX_LOG_LINES:
            message = line.decode("utf-8", "replace").rstrip("\r")
            self.logs.append(LogLine(at=utcnow(), channel=channel, message=message))

    def finish(self) -> tuple[str, list[LogLine]]:
        for channel, rest in self._partial.items():
            if rest:
                self._log(channel, bytes(rest))
        text = self.data.decode("utf-8", "replace")
        if self.truncated:
            text += TRUNCATION_MARKER
        return text, self.logs


class _ExitWatch:
    """Resolves when the child exits: a pidfd watched by the event loop (Linux), else polling."""

    def __init__(self, loop: asyncio.AbstractEventLoop, process: subprocess.Popen[bytes]) -> None:
        self._loop = loop
        self._process = process
        self._pidfd: int | None = None
        self.exited: asyncio.Future[None] = loop.create_future()
        self._poller: asyncio.Task[None] | None = None
        try:
            self._pidfd = os.pidfd_open(process.pid)
        except (AttributeError, OSError):
            self._poller = loop.create_task(self._poll())
        else:
            loop.add_reader(self._pidfd, self._ready)

    def _ready(self) -> None:
        self._release()
        if not self.exited.done():
            self.exited.set_result(None)

    async def _poll(self) -> None:
        delay = 0.002
        while self._process.poll() is None:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        if not self.exited.done():
            self.exited.set_result(None)

    def _release(self) -> None:
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None

    def close(self) -> None:
        self._release()
        if self._poller is not None:
            self._poller.cancel()


async def _read_pipe(
    loop: asyncio.AbstractEventLoop, pipe: IO[bytes]
) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    reader = asyncio.StreamReader(limit=READ_CHUNK, loop=loop)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader, loop=loop), pipe
    )
    return reader, transport


async def _write_pipe(loop: asyncio.AbstractEventLoop, pipe: IO[bytes]) -> asyncio.StreamWriter:
    transport, protocol = await loop.connect_write_pipe(
        lambda: asyncio.streams.FlowControlMixin(loop=loop), pipe
    )
    return asyncio.StreamWriter(transport, protocol, None, loop)


async def _pump(stream: asyncio.StreamReader, channel: str, sink: _BoundedOutput) -> None:
    while chunk := await stream.read(READ_CHUNK):
        sink.feed(channel, chunk)


async def _feed(stream: asyncio.StreamWriter, data: bytes) -> None:
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        stream.write(data)
        await stream.drain()
    stream.close()


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def run_command(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    stdin: bytes | None = None,
    output_limit: int = DEFAULT_OUTPUT_LIMIT,
) -> CommandResult:
    """Run `argv` (never through a shell) and return its exit code and bounded combined output.

    On timeout or cancellation the whole process group is killed; exit code 124 marks a timeout
    and -1 a command that could not be started.
    """
    if not argv:
        raise ValueError("argv must not be empty")
    loop = asyncio.get_running_loop()
    try:
        # Popen spawns with vfork/posix_spawn: about a millisecond even from a large replica
        # process, where an event loop's own fork-based spawn (uvloop's) costs 10-20 ms.
        process = subprocess.Popen(
            list(argv),
            cwd=str(cwd),
            env=dict(env),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        message = f"cannot start {argv[0]}: {exc.strerror or exc}"
        return CommandResult(exit_code=-1, output=message, truncated=False, timed_out=False)
    watch = _ExitWatch(loop, process)
    transports: list[asyncio.BaseTransport] = []
    sink = _BoundedOutput(output_limit)
    pumps: asyncio.Future[Any] | None = None
    feeder: asyncio.Future[None] | None = None
    timed_out = False
    try:
        assert process.stdout is not None and process.stderr is not None
        out, out_transport = await _read_pipe(loop, process.stdout)
        err, err_transport = await _read_pipe(loop, process.stderr)
        transports += [out_transport, err_transport]
        pumps = asyncio.gather(_pump(out, "stdout", sink), _pump(err, "stderr", sink))
        if stdin is not None and process.stdin is not None:
            writer = await _write_pipe(loop, process.stdin)
            transports.append(writer.transport)
            # Fed in the background so that a child that never reads stdin is still timed out.
            feeder = asyncio.ensure_future(_feed(writer, stdin))
        done, _ = await asyncio.wait({watch.exited}, timeout=timeout)
        if done:
            # A background grandchild may hold the pipes open; it gets a short grace, no more.
            await asyncio.wait({pumps}, timeout=PIPE_GRACE_SECONDS)
        else:
            timed_out = True
    finally:
        _kill_group(process.pid)
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(watch.exited), KILL_GRACE_SECONDS)
        watch.close()
        for task in (pumps, feeder):
            if task is None:
                continue
            if not task.done():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for transport in transports:
            transport.close()
        process.poll()
    output, logs = sink.finish()
    returncode = process.returncode
    exit_code = 124 if timed_out else (returncode if returncode is not None else -1)
    return CommandResult(
        exit_code=exit_code, output=output, truncated=sink.truncated, timed_out=timed_out, logs=logs
    )
