"""Watching real processes from tests: their state in /proc, and bounded waits on them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path


def process_state(pid: int) -> str | None:
    """The state letter from /proc/<pid>/stat (R, S, Z, …), or None once the pid is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text.rsplit(")", 1)[1].split()[0]


async def wait_for_file(path: Path, deadline_s: float = 5.0) -> str:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if path.exists() and (content := path.read_text().strip()):
            return content
        await asyncio.sleep(0.02)
    raise AssertionError(f"{path} was not written within {deadline_s}s")


async def gone_or_zombie(pid: int, deadline_s: float = 5.0) -> bool:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if process_state(pid) in (None, "Z", "X"):
            return True
        await asyncio.sleep(0.02)
    return False


def unique_seconds(whole: int = 30) -> str:
    """A `sleep` argument no other process on the machine has: finding it in a host process's
    command line identifies a sandboxed process whose own pid lives in another PID namespace."""
    return f"{whole}.{time.time_ns() % 10**9:09d}"


def host_processes_with_argument(argument: str) -> list[int]:
    """Live (not zombie) host processes with `argument` as one of their argv elements."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argument.encode() in argv and process_state(int(entry.name)) not in (None, "Z", "X"):
            found.append(int(entry.name))
    return found


async def none_left_with_argument(argument: str, deadline_s: float = 5.0) -> bool:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if not host_processes_with_argument(argument):
            return True
        await asyncio.sleep(0.05)
    return False


def wait_until_none_left_with_argument(argument: str, deadline_s: float = 5.0) -> bool:
    """`none_left_with_argument` for tests that are not coroutines."""
    end = time.monotonic() + deadline_s
    while host_processes_with_argument(argument):
        if time.monotonic() >= end:
            return False
        time.sleep(0.05)
    return True
