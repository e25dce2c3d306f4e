"""The path jail: lexical cleaning, re-rooting, the allowlist and symlink resolution."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from serve_app.domain.errors import ErrorCode, ServiceError
from serve_app.domain.paths import clean, resolve, within_allowed, workspace_relative


def make_workspace(tmp_path: Path) -> Path:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    return workspace


def real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def denied(workspace: Path, allowed: list[str], user_path: str, **kwargs: bool) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        resolve(workspace, allowed, user_path, **kwargs)
    return caught.value


# clean ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", "."),
        (".", "."),
        ("a", "a"),
        ("a/", "a"),
        ("a//b", "a/b"),
        ("a/./b", "a/b"),
        ("a/b/..", "a"),
        ("a/b/../../..", ".."),
        ("../../a", "../../a"),
        ("/", "/"),
        ("//", "/"),
        ("///a", "/a"),
        ("//a/../b", "/b"),
        ("/../a", "/a"),
        ("/..", "/"),
        ("a/../../b", "../b"),
    ],
)
def test_clean_follows_go_path_clean(raw: str, expected: str) -> None:
    assert clean(raw) == expected


# workspace_relative -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/etc/passwd", "etc/passwd"),
        ("/", "."),
        ("", "."),
        ("//x//y/", "x/y"),
        ("/../etc", "etc"),
        ("a/b/../c", "a/c"),
        ("../x", "../x"),
        ("./src", "src"),
    ],
)
def test_workspace_relative_cleans_and_reroots(raw: str, expected: str) -> None:
    assert workspace_relative(raw) == expected


# within_allowed ---------------------------------------------------------------------------------


def test_within_allowed_dot_admits_everything_inside() -> None:
    assert within_allowed("a/b/c", ["."])
    assert within_allowed(".", ["."])
    assert not within_allowed("..", ["."])
    assert not within_allowed("../x", ["."])


def test_within_allowed_entry_matches_exact_and_prefix_only() -> None:
    assert within_allowed("sandbox", ["sandbox"])
    assert within_allowed("sandbox/x/y", ["sandbox"])
    assert not within_allowed("sandboxx", ["sandbox"])
    assert not within_allowed("sandboxx/y", ["sandbox"])
    assert not within_allowed("other", ["sandbox"])
    assert not within_allowed(".", ["sandbox"])


def test_within_allowed_normalises_entries() -> None:
    assert within_allowed("sandbox/x", ["/sandbox/"])
    assert within_allowed("sandbox/x", [" sandbox "])
    assert within_allowed("docs/a", ["sandbox", "docs"])
    assert not within_allowed("a", [])


# resolve: lexical checks ------------------------------------------------------------------------


def test_resolve_reroots_absolute_path_inside_workspace(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    resolved = resolve(workspace, ["."], "/etc/passwd")
    assert resolved.real == real(workspace) / "etc" / "passwd"
    assert resolved.relative == "etc/passwd"
    assert resolved.requested == "etc/passwd"
    assert not resolved.is_root


def test_resolve_root_variants_are_the_workspace(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    for user_path in ("", ".", "/", "a/.."):
        resolved = resolve(workspace, ["."], user_path)
        assert resolved.real == real(workspace)
        assert resolved.is_root


@pytest.mark.parametrize("user_path", ["..", "../x", "a/../../x", "../ws/x"])
def test_resolve_rejects_dotdot_escape(tmp_path: Path, user_path: str) -> None:
    workspace = make_workspace(tmp_path)
    error = denied(workspace, ["."], user_path)
    assert error.code is ErrorCode.POLICY_DENIED
    assert error.message == "path escapes workspace"


def test_resolve_allowlist_exact_and_prefix(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    assert resolve(workspace, ["sandbox"], "sandbox").relative == "sandbox"
    assert resolve(workspace, ["sandbox"], "sandbox/a/b.txt").relative == "sandbox/a/b.txt"
    assert resolve(workspace, ["sandbox"], "/sandbox/a").relative == "sandbox/a"
    assert resolve(workspace, ["."], "anything/at/all").relative == "anything/at/all"


@pytest.mark.parametrize("user_path", ["sandboxx", "sandboxx/a", "other", ".", "/"])
def test_resolve_allowlist_denies_outside_entries(tmp_path: Path, user_path: str) -> None:
    workspace = make_workspace(tmp_path)
    error = denied(workspace, ["sandbox"], user_path)
    assert error.code is ErrorCode.POLICY_DENIED
    assert error.message == "path outside allowed_paths"


# resolve: symlinks ------------------------------------------------------------------------------


def test_resolve_denies_symlink_pointing_outside(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    os.symlink(secret, workspace / "leak")
    error = denied(workspace, ["."], "leak")
    assert error.code is ErrorCode.POLICY_DENIED
    assert "symlink" in error.message


def test_resolve_denies_relative_symlink_climbing_out(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    (tmp_path / "outside").mkdir()
    os.symlink("../outside", workspace / "up")
    assert denied(workspace, ["."], "up").code is ErrorCode.POLICY_DENIED


def test_resolve_denies_symlinked_parent_directory_outside(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "file.txt").write_text("x")
    os.symlink(outside, workspace / "linkdir")
    for user_path in ("linkdir/file.txt", "linkdir/new.txt"):
        assert denied(workspace, ["."], user_path).code is ErrorCode.POLICY_DENIED
        # Not following the final component does not help: the parent is resolved anyway.
        error = denied(workspace, ["."], user_path, follow_final=False)
        assert error.code is ErrorCode.POLICY_DENIED


def test_resolve_denies_symlink_into_non_allowed_directory(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    (workspace / "sandbox").mkdir()
    (workspace / "private").mkdir()
    (workspace / "private" / "key").write_text("k")
    os.symlink(workspace / "private", workspace / "sandbox" / "door")
    error = denied(workspace, ["sandbox"], "sandbox/door/key")
    assert error.code is ErrorCode.POLICY_DENIED
    assert error.message == "path resolves outside allowed_paths through a symlink"
    # With the whole workspace allowed the same link is fine.
    assert resolve(workspace, ["."], "sandbox/door/key").relative == "private/key"


def test_resolve_allows_symlink_inside_workspace_and_returns_target(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    (workspace / "src").mkdir()
    target = workspace / "src" / "main.py"
    target.write_text("print()")
    os.symlink("src/main.py", workspace / "alias.py")
    resolved = resolve(workspace, ["."], "alias.py")
    assert resolved.real == real(target)
    assert resolved.relative == "src/main.py"
    assert resolved.requested == "alias.py"


def test_resolve_without_following_final_returns_the_link_itself(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("s")
    os.symlink(secret, workspace / "leak")
    resolved = resolve(workspace, ["."], "leak", follow_final=False)
    assert resolved.real == real(workspace) / "leak"
    assert resolved.relative == "leak"
    assert resolved.real.is_symlink()


def test_resolve_workspace_itself_behind_symlink(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    alias = tmp_path / "alias"
    os.symlink(workspace, alias)
    resolved = resolve(alias, ["."], "a.txt")
    assert resolved.real == real(workspace) / "a.txt"
    assert resolved.relative == "a.txt"


# resolve: input sanity --------------------------------------------------------------------------


def test_resolve_rejects_nul_byte(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    error = denied(workspace, ["."], "a\x00b")
    assert error.code is ErrorCode.INVALID_ARGUMENT
    assert "NUL" in error.message


def test_resolve_rejects_overlong_path(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    long_path = "/".join(["d" * 100] * 41)  # 4140 bytes, each component short
    assert len(long_path.encode()) > 4096
    error = denied(workspace, ["."], long_path)
    assert error.code is ErrorCode.INVALID_ARGUMENT
    assert "4096" in error.message


def test_resolve_rejects_overlong_component(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    error = denied(workspace, ["."], "dir/" + "x" * 256)
    assert error.code is ErrorCode.INVALID_ARGUMENT
    assert "255" in error.message
    # Multi-byte characters count in bytes: 128 two-byte characters are 256 bytes.
    assert denied(workspace, ["."], "é" * 128).code is ErrorCode.INVALID_ARGUMENT
    assert resolve(workspace, ["."], "x" * 255).relative == "x" * 255
