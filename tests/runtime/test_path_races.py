"""The path check-and-use race, run as an attacker would: two executor processes on one
workspace root. One keeps swapping a directory of the attacker's workspace between a real
directory and a symlink to another tenant's workspace (through `fs.move`); the other reads,
writes, lists, copies, moves, creates and deletes through that directory. Not one operation may
act on the other tenant's files.

The symlink is created on disk by the test: any code-running tool (or `fs.patch` with mode
120000) can plant one in a workspace, so the test starts from there.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from serve_app.execution.executor import ExecutionService
from serve_app.runtime.sandbox import Sandbox
from serve_app.tools import build_registry
from tests.support.execution import make_session, run

ATTEMPTS = 5_000
SECRET = "the other tenant's secret\n"
MINE = "the attacker's own file\n"
VICTIM_FILES = {"secret.txt": SECRET, "canary.txt": "canary\n", "victim-only.txt": "private\n"}


def _executor() -> ExecutionService:
    return ExecutionService(build_registry(), sandbox=Sandbox())


def _swap(workspace: str, stop: str) -> int:
    """Executor process 1: swap `mid` between the real directory and the planted symlink."""

    async def loop() -> int:
        service = _executor()
        session = make_session(Path(workspace), session_id="attacker")
        moves = (("mid", "mid.real"), ("pivot", "mid"), ("mid", "pivot"), ("mid.real", "mid"))
        swaps = 0
        try:
            while not os.path.exists(stop):
                for source, destination in moves:
                    await run(
                        service,
                        session,
                        "fs.move",
                        {"source_path": source, "destination_path": destination},
                    )
                swaps += 1
        finally:
            service.close()
        return swaps

    return asyncio.run(loop())


def _operations(attempt: int) -> tuple[str, dict[str, Any]]:
    """The operation of one attempt, each through `mid`, in turn."""
    operations: list[tuple[str, dict[str, Any]]] = [
        ("fs.read_file", {"path": "mid/secret.txt"}),
        ("fs.write_file", {"path": f"mid/planted-{attempt}.txt", "content": "planted"}),
        ("fs.list", {"path": "mid"}),
        ("fs.copy", {"source_path": "mid/secret.txt", "destination_path": f"copy-{attempt}"}),
        ("fs.mkdir", {"path": f"mid/made-{attempt}"}),
        ("fs.delete", {"path": "mid/canary.txt"}),
        ("fs.move", {"source_path": "mid/victim-only.txt", "destination_path": f"got-{attempt}"}),
        ("fs.search", {"path": "mid", "pattern": "secret"}),
        ("fs.stat", {"path": "mid/victim-only.txt"}),
    ]
    return operations[attempt % len(operations)]


def _leaked(tool: str, succeeded: bool, output: Any) -> bool:
    """Whether an attempt reached the other tenant's directory: only there do `victim-only.txt`
    and `canary.txt` exist, and only there is the secret."""
    if tool in ("fs.move", "fs.delete"):
        return succeeded
    if tool == "fs.stat":
        return bool(succeeded and output.get("exists"))
    text = repr(output)
    return "other tenant" in text or "victim-only" in text or "canary" in text


def _use(workspace: str, attempts: int, stop: str) -> dict[str, Any]:
    """Executor process 2: act through `mid` and record what each attempt saw."""

    async def loop() -> dict[str, Any]:
        service = _executor()
        session = make_session(Path(workspace), session_id="attacker")
        outcomes: Counter[str] = Counter()
        leaks: list[str] = []
        try:
            for attempt in range(attempts):
                tool, args = _operations(attempt)
                result = await run(service, session, tool, args)
                outcomes["failed" if result.error else "succeeded"] += 1
                if _leaked(tool, result.error is None, result.output):
                    leaks.append(f"{tool}: {result.output!r:.200}")
        finally:
            Path(stop).touch()
            service.close()
        return {"outcomes": dict(outcomes), "leaks": leaks}

    return asyncio.run(loop())


def test_no_swap_of_a_directory_for_a_symlink_escapes_the_workspace(tmp_path: Path) -> None:
    victim = tmp_path / "tenant-b" / "s" / "repo"
    victim.mkdir(parents=True)
    for name, text in VICTIM_FILES.items():
        (victim / name).write_text(text)
    attacker = tmp_path / "tenant-a" / "s" / "repo"
    (attacker / "mid").mkdir(parents=True)
    (attacker.parent / "home").mkdir()
    (attacker / "mid" / "secret.txt").write_text(MINE)
    (attacker / "pivot").symlink_to(victim)
    stop = str(tmp_path / "stop")

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        swapper = pool.submit(_swap, str(attacker), stop)
        user = pool.submit(_use, str(attacker), ATTEMPTS, stop)
        seen = user.result(timeout=600)
        swaps = swapper.result(timeout=60)

    assert seen["leaks"] == []
    assert sorted(p.name for p in victim.iterdir()) == sorted(VICTIM_FILES)
    for name, text in VICTIM_FILES.items():
        assert (victim / name).read_text() == text
    for path in attacker.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert path.read_text() != SECRET, path
    # The race was really run: the swap kept going, and attempts both succeeded (the real
    # directory was there) and failed (the symlink was).
    outcomes = seen["outcomes"]
    assert sum(outcomes.values()) == ATTEMPTS
    assert swaps > 100
    assert outcomes["succeeded"] > 100 and outcomes["failed"] > 100, outcomes
