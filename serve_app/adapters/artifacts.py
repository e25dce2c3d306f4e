"""Artifacts on a filesystem: `ARTIFACT_ROOT/<invocation_id>/<artifact_id>-<name>`."""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import os
import re
import secrets
import shutil
from datetime import UTC, datetime
from pathlib import Path

from serve_app.domain.errors import invalid_argument, not_found
from serve_app.domain.ids import is_safe_id, new_artifact_id
from serve_app.domain.models import Artifact, utcnow

_ARTIFACT_FILE = re.compile(r"^(artifact-[0-9a-f]{16})-(.+)$")
MAX_NAME_CHARS = 200


def sanitise_name(name: str) -> str:
    """Base name only, with `..`, `/` and `\\` neutralised; empty → `artifact.bin`."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = base.replace("..", "_").replace("\x00", "")
    base = "".join(ch if ch.isprintable() else "_" for ch in base).strip()
    return base[:MAX_NAME_CHARS] or "artifact.bin"


class LocalArtifactStore:
    """`retention_seconds` after an invocation's last artifact was written (its record's
    lifetime, plus a margin), the sweeper removes its directory; 0 keeps artifacts forever."""

    def __init__(self, root: Path, *, retention_seconds: int = 0) -> None:
        self._root = root
        self._retention = retention_seconds

    def _directory(self, invocation_id: str) -> Path:
        if not is_safe_id(invocation_id):
            raise invalid_argument("invalid invocation id")
        return self._root / invocation_id

    async def put(self, invocation_id: str, name: str, content_type: str, data: bytes) -> Artifact:
        directory = self._directory(invocation_id)
        artifact_id = new_artifact_id()
        clean_name = sanitise_name(name)
        path = directory / f"{artifact_id}-{clean_name}"
        await asyncio.to_thread(_write, directory, path, data)
        return Artifact(
            id=artifact_id,
            name=clean_name,
            path=str(path),
            content_type=content_type,
            size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            created_at=utcnow(),
        )

    async def read(self, invocation_id: str, artifact_id: str) -> bytes:
        directory = self._directory(invocation_id)
        return await asyncio.to_thread(_read, directory, artifact_id)

    async def list(self, invocation_id: str) -> list[Artifact]:
        return await asyncio.to_thread(_list, self._directory(invocation_id))

    async def sweep(self, now: datetime, limit: int) -> int:
        if self._retention <= 0:
            return 0
        cutoff = now.timestamp() - self._retention
        return await asyncio.to_thread(_sweep, self._root, cutoff, limit)


def _sweep(root: Path, cutoff: float, limit: int) -> int:
    removed = 0
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if removed >= limit:
            break
        if not is_safe_id(entry.name) or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            newest = max(
                [entry.stat(follow_symlinks=False).st_mtime]
                + [f.stat(follow_symlinks=False).st_mtime for f in os.scandir(entry.path)]
            )
        except FileNotFoundError:
            continue
        if newest < cutoff:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed += 1
    return removed


def _write(directory: Path, path: Path, data: bytes) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{secrets.token_hex(6)}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)


def _read(directory: Path, artifact_id: str) -> bytes:
    try:
        for entry in os.scandir(directory):
            match = _ARTIFACT_FILE.match(entry.name)
            if match and match.group(1) == artifact_id and entry.is_file(follow_symlinks=False):
                return Path(entry.path).read_bytes()
    except FileNotFoundError:
        pass
    raise not_found("artifact not found")


def _list(directory: Path) -> list[Artifact]:
    artifacts: list[Artifact] = []
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except FileNotFoundError:
        return artifacts
    for entry in entries:
        match = _ARTIFACT_FILE.match(entry.name)
        if not match or not entry.is_file(follow_symlinks=False):
            continue
        data = Path(entry.path).read_bytes()
        info = entry.stat(follow_symlinks=False)
        content_type = mimetypes.guess_type(match.group(2))[0] or "application/octet-stream"
        artifacts.append(
            Artifact(
                id=match.group(1),
                name=match.group(2),
                path=entry.path,
                content_type=content_type,
                size_bytes=info.st_size,
                sha256=hashlib.sha256(data).hexdigest(),
                created_at=datetime.fromtimestamp(info.st_mtime, UTC),
            )
        )
    return artifacts
