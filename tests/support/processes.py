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
