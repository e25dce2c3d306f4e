"""The path jail: a tool touches only files inside its session's workspace and allowed_paths.

Checks run in this order: input sanity (NUL, length), lexical clean (Go `path.Clean` semantics),
absolute paths re-rooted under the workspace, `..` rejected, allowlist, then the real path with
symlinks resolved must still lie inside the workspace and the allowlist.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from pathlib import Path, PurePath

from serve_app.domain.errors import invalid_argument, policy_denied

MAX_PATH_BYTES = 4096
MAX_COMPONENT_BYTES = 255


def clean(path: str) -> str:
    """Lexically clean a slash path like Go's `path.Clean` ("" → ".", "//a/../b" → "/b")."""
    if path == "":
        return "."
    cleaned = posixpath.normpath(path)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    return cleaned


def check_input(path: str) -> None:
    if "\x00" in path:
        raise invalid_argument("path contains a NUL byte")
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise invalid_argument(f"path is longer than {MAX_PATH_BYTES} bytes")
    if any(
        len(part.encode("utf-8", "surrogatepass")) > MAX_COMPONENT_BYTES for part in path.split("/")
    ):
        raise invalid_argument(f"path has a component longer than {MAX_COMPONENT_BYTES} bytes")


def workspace_relative(path: str) -> str:
    """Clean a user path and re-root an absolute one: "/etc/passwd" → "etc/passwd"."""
    cleaned = clean(path)
    if cleaned.startswith("/"):
        cleaned = clean(cleaned.lstrip("/"))
    return cleaned


def escapes(relative: str) -> bool:
    return relative == ".." or relative.startswith("../")


def within_allowed(relative: str, allowed_paths: list[str]) -> bool:
    """Allowlist semantics of contract §5.2: "." admits everything inside; else exact or prefix/."""
    if escapes(relative):
        return False
    for entry in allowed_paths:
        allowed = workspace_relative(entry.strip())
        if allowed == ".":
            return True
        if relative == allowed or relative.startswith(allowed + "/"):
            return True
    return False


@dataclass(frozen=True)
class WorkspacePath:
    """A path inside a workspace.

    `real` is absolute with symlinks resolved; `relative` is `real` relative to the workspace;
    `requested` is the caller's path, cleaned and re-rooted, used when echoing it back.
    """

    real: PurePath
    relative: str
    requested: str

    @property
    def is_root(self) -> bool:
        return self.relative == "."


def resolve(
    workspace: str | Path,
    allowed_paths: list[str],
    user_path: str,
    *,
    follow_final: bool = True,
) -> WorkspacePath:
    """Resolve `user_path` inside `workspace` or raise `policy_denied`/`invalid_argument`.

    With `follow_final=False` a final symlink is not followed (the link itself is the target),
    which is what delete, stat and move act on.
    """
    check_input(user_path)
    relative = workspace_relative(user_path)
    if escapes(relative):
        raise policy_denied("path escapes workspace")
    if not within_allowed(relative, allowed_paths):
        raise policy_denied("path outside allowed_paths")
    real_root = Path(os.path.realpath(workspace))
    candidate = real_root if relative == "." else real_root / relative
    if follow_final or relative == ".":
        real = Path(os.path.realpath(candidate))
    else:
        real = Path(os.path.realpath(candidate.parent)) / candidate.name
    try:
        real_relative = real.relative_to(real_root).as_posix()
    except ValueError:
        raise policy_denied("path escapes workspace through a symlink") from None
    real_relative = real_relative or "."
    if not within_allowed(real_relative, allowed_paths):
        raise policy_denied("path resolves outside allowed_paths through a symlink")
    return WorkspacePath(real=real, relative=real_relative, requested=relative)
