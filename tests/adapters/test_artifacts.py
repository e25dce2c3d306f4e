"""Artifacts do not outlive their invocations: the sweeper removes what is older than the
invocation records' lifetime, and only that."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

from serve_app.adapters.artifacts import LocalArtifactStore
from serve_app.config import Settings
from serve_app.wiring import artifact_retention_seconds


async def test_the_sweeper_removes_only_expired_invocations_artifacts(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path, retention_seconds=3600)
    old = await store.put("inv-0000000000000001", "out.json", "application/json", b"{}")
    new = await store.put("inv-0000000000000002", "out.json", "application/json", b"{}")
    two_hours_ago = time.time() - 7200
    for path in (Path(old.path), Path(old.path).parent):
        os.utime(path, (two_hours_ago, two_hours_ago))
    (tmp_path / "not-an-invocation..").mkdir()
    removed = await store.sweep(datetime.now(UTC), limit=100)
    assert removed == 1
    assert not Path(old.path).parent.exists()
    assert Path(new.path).exists()
    assert (tmp_path / "not-an-invocation..").exists()
    assert await store.list("inv-0000000000000002") != []


async def test_without_an_invocation_ttl_artifacts_are_kept(tmp_path: Path) -> None:
    settings = Settings(
        workspace_root=tmp_path / "w", artifact_root=tmp_path / "a", invocation_store_ttl_seconds=0
    )
    assert artifact_retention_seconds(settings) == 0
    store = LocalArtifactStore(tmp_path, retention_seconds=0)
    kept = await store.put("inv-0000000000000003", "out.json", "application/json", b"{}")
    os.utime(kept.path, (0, 0))
    assert await store.sweep(datetime.now(UTC), limit=100) == 0
    assert Path(kept.path).exists()
