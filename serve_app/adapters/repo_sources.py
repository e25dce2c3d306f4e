"""Where a session's repository may come from: a `repo_url` over an allowed transport, or a local
repository (`source_repo_path`, a path or `file://` URL) under `WORKSPACE_SOURCE_REPO_ROOTS` and
never inside `WORKSPACE_ROOT` or `ARTIFACT_ROOT`, whatever the roots say."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from serve_app.domain.errors import invalid_argument, policy_denied

REMOTE_SCHEMES = frozenset({"https", "http", "ssh", "git"})
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_TRANSPORT = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)::")
_SCP_LIKE = re.compile(r"^[^/:]+@[^/:]+:")


@dataclass(frozen=True)
class RepoSource:
    """A checked source: a remote URL (`local` None) or a local repository's real path."""

    url: str
    scheme: str
    local: Path | None = None


class RepoSources:
    def __init__(
        self,
        *,
        source_roots: list[str],
        workspace_root: Path,
        artifact_root: Path,
        allowed_schemes: list[str],
    ) -> None:
        self._roots = [Path(os.path.realpath(root)) for root in source_roots]
        self._private = [
            Path(os.path.realpath(workspace_root)),
            Path(os.path.realpath(artifact_root)),
        ]
        self._schemes = frozenset(allowed_schemes)

    def local(self, path: str, field: str = "source_repo_path") -> Path:
        """The real path of a local source, or `policy_denied` saying why it may not be used."""
        if not os.path.isabs(path):
            raise invalid_argument(f"{field} must be an absolute server path")
        real = Path(os.path.realpath(path))
        for private in self._private:
            if real == private or private in real.parents or real in private.parents:
                raise policy_denied(
                    f"{field} is inside or above WORKSPACE_ROOT or ARTIFACT_ROOT, which hold "
                    "other sessions' files"
                )
        if not any(real == root or root in real.parents for root in self._roots):
            raise policy_denied(f"{field} is outside the configured WORKSPACE_SOURCE_REPO_ROOTS")
        if not real.is_dir():
            raise invalid_argument(f"{field} is not a directory")
        return real

    def remote(self, url: str) -> RepoSource:
        """`repo_url` checked: an allowed transport, or a local repository allowed as above."""
        if _TRANSPORT.match(url):
            raise policy_denied("repo_url: git's <transport>:: addresses are not allowed")
        if url.startswith("/"):
            return RepoSource(url, "file", self.local(url, "repo_url"))
        scheme_match = _SCHEME.match(url)
        if scheme_match is None:
            if _SCP_LIKE.match(url):
                return self._allowed(RepoSource(url, "ssh"))
            raise invalid_argument("repo_url is not a valid git URL")
        scheme = scheme_match.group(1).lower()
        if scheme == "file":
            return RepoSource(url, "file", self.local(url[len("file://") :], "repo_url"))
        return self._allowed(RepoSource(url, scheme))

    def _allowed(self, source: RepoSource) -> RepoSource:
        if source.scheme not in self._schemes:
            allowed = ", ".join(sorted(self._schemes)) or "none"
            raise policy_denied(
                f"repo_url: the {source.scheme} transport is not allowed (allowed: {allowed}; "
                "WORKSPACE_GIT_ALLOWED_SCHEMES)"
            )
        return source
