"""The fs.* tools, driven through the ExecutionService with a real registry and real files."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import stat
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

from serve_app.domain.errors import ErrorCode
from serve_app.domain.models import Session
from serve_app.execution.executor import ExecutionService
from serve_app.tools import build_registry
from tests.support.execution import fails, make_session, ok, run
from tests.support.processes import none_left_with_argument, unique_seconds

MIB = 1024 * 1024


# helpers ----------------------------------------------------------------------------------------


@pytest.fixture
def session(workspace: Path) -> Session:
    return make_session(workspace)


def outside_dir(workspace: Path) -> Path:
    """A directory next to the workspace (not inside it), with a secret in it."""
    outside = workspace.parent / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "secret.txt").write_text("top secret\n")
    return outside


def git(cwd: Path, *args: str) -> str:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(cwd),
        "GIT_CONFIG_NOSYSTEM": "1",
        "LC_ALL": "C",
    }
    completed = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return completed.stdout


def modify_diff(path: str, old: str, new: str) -> str:
    return (
        f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n@@ -1 +1 @@\n-{old}\n+{new}\n"
    )


# executor-level ---------------------------------------------------------------------------------


async def test_unknown_tool_is_not_found(executor: ExecutionService, session: Session) -> None:
    result = await run(executor, session, "fs.nope", {})
    assert result.error is not None
    assert result.error.code == "not_found"
    assert result.exit_code == -1
    assert result.output is None


async def test_hanging_tool_times_out_and_its_process_group_is_killed(session: Session) -> None:
    service = ExecutionService(build_registry(["tests.support.tools:TOOLS"]))
    seconds = unique_seconds()
    try:
        started = time.monotonic()
        result = await run(service, session, "test.hang", {"seconds": float(seconds)}, timeout=1)
        elapsed = time.monotonic() - started
    finally:
        service.close()
    assert result.error is not None
    assert result.error.code == "timeout"
    assert result.error.retryable
    assert result.exit_code == 124
    assert elapsed < 15
    assert await none_left_with_argument(str(float(seconds))), "the sleeping grandchild survived"


# fs.list ----------------------------------------------------------------------------------------


async def test_list_default_is_one_level_with_entry_fields(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    (workspace / "b.txt").write_text("hello")
    os.chmod(workspace / "b.txt", 0o640)
    (workspace / "a").mkdir()
    (workspace / "a" / "inner.txt").write_text("x")
    output = await ok(executor, session, "fs.list", {})
    assert output["count"] == 2
    assert output["truncated"] is False
    entries = {entry["path"]: entry for entry in output["entries"]}
    assert list(entries) == ["a", "b.txt"]
    assert entries["a"]["type"] == "dir"
    file_entry = entries["b.txt"]
    assert file_entry["type"] == "file"
    assert file_entry["size_bytes"] == 5
    assert file_entry["mode"] == "0640"
    modified = datetime.fromisoformat(file_entry["modified_at"])
    assert file_entry["modified_at"].endswith("Z")
    assert abs(modified.timestamp() - (workspace / "b.txt").stat().st_mtime) < 1


async def test_list_recursive_and_subdirectory(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    (workspace / "a" / "b").mkdir(parents=True)
    (workspace / "a" / "b" / "deep.txt").write_text("x")
    (workspace / "top.txt").write_text("x")
    output = await ok(executor, session, "fs.list", {"recursive": True})
    paths = [entry["path"] for entry in output["entries"]]
    assert set(paths) == {"a", "a/b", "a/b/deep.txt", "top.txt"}
    assert output["count"] == 4
    sub = await ok(executor, session, "fs.list", {"path": "a"})
    assert [entry["path"] for entry in sub["entries"]] == ["a/b"]


async def test_list_max_entries_truncates(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    for index in range(5):
        (workspace / f"f{index}.txt").write_text("x")
    output = await ok(executor, session, "fs.list", {"max_entries": 3})
    assert output["count"] == 3
    assert output["truncated"] is True
    assert [entry["path"] for entry in output["entries"]] == ["f0.txt", "f1.txt", "f2.txt"]
    exact = await ok(executor, session, "fs.list", {"max_entries": 5})
    assert exact["count"] == 5
    assert exact["truncated"] is False


async def test_list_recursive_truncates_across_directories(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    for directory in ("d1", "d2"):
        (workspace / directory).mkdir()
        for index in range(3):
            (workspace / directory / f"{index}.txt").write_text("x")
    output = await ok(executor, session, "fs.list", {"recursive": True, "max_entries": 4})
    assert output["count"] == 4
    assert output["truncated"] is True


async def test_list_does_not_descend_into_git(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    (workspace / ".git" / "objects").mkdir(parents=True)
    (workspace / ".git" / "config").write_text("[core]\n")
    (workspace / "src").mkdir()
    (workspace / "src" / "main.py").write_text("x")
    output = await ok(executor, session, "fs.list", {"recursive": True})
    paths = {entry["path"] for entry in output["entries"]}
    assert paths == {".git", "src", "src/main.py"}


async def test_list_reports_symlink_without_following_it(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    outside = outside_dir(workspace)
    os.symlink(outside, workspace / "link")
    output = await ok(executor, session, "fs.list", {"recursive": True})
    entries = {entry["path"]: entry for entry in output["entries"]}
    assert set(entries) == {"link"}
    assert entries["link"]["type"] == "symlink"


async def test_list_errors(executor: ExecutionService, session: Session, workspace: Path) -> None:
    (workspace / "file.txt").write_text("x")
    outside = outside_dir(workspace)
    os.symlink(outside, workspace / "link")
    await fails(executor, session, "fs.list", {"path": "missing"}, ErrorCode.NOT_FOUND)
    await fails(executor, session, "fs.list", {"path": "file.txt"}, ErrorCode.INVALID_ARGUMENT)
    await fails(executor, session, "fs.list", {"path": ".."}, ErrorCode.POLICY_DENIED)
    await fails(executor, session, "fs.list", {"path": "link"}, ErrorCode.POLICY_DENIED)


# fs.read_file -----------------------------------------------------------------------------------


async def test_read_file_utf8(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    text = "héllo wörld\nline 2\n"
    (workspace / "notes.txt").write_text(text, encoding="utf-8")
    output = await ok(executor, session, "fs.read_file", {"path": "notes.txt"})
    assert output == {
        "path": "notes.txt",
        "encoding": "utf8",
        "content": text,
        "size_bytes": len(text.encode()),
        "truncated": False,
    }


async def test_read_file_binary_is_base64(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    data = bytes(range(256))
    (workspace / "blob.bin").write_bytes(data)
    output = await ok(executor, session, "fs.read_file", {"path": "blob.bin"})
    assert output["encoding"] == "base64"
    assert base64.b64decode(output["content"]) == data
    assert output["size_bytes"] == 256


async def test_read_file_absolute_path_is_rerooted(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    await fails(executor, session, "fs.read_file", {"path": "/etc/passwd"}, ErrorCode.NOT_FOUND)
    (workspace / "etc").mkdir()
    (workspace / "etc" / "passwd").write_text("workspace copy\n")
    output = await ok(executor, session, "fs.read_file", {"path": "/etc/passwd"})
    assert output["content"] == "workspace copy\n"
    assert output["path"] == "etc/passwd"


async def test_read_file_max_bytes_truncates(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    (workspace / "data.txt").write_text("0123456789" * 10)
    output = await ok(executor, session, "fs.read_file", {"path": "data.txt", "max_bytes": 15})
    assert output["content"] == "012345678901234"
    assert output["truncated"] is True
    assert output["size_bytes"] == 100
    whole = await ok(executor, session, "fs.read_file", {"path": "data.txt", "max_bytes": 100})
    assert whole["truncated"] is False


async def test_read_file_truncation_inside_multibyte_character_stays_utf8(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    (workspace / "accents.txt").write_text("é" * 10, encoding="utf-8")
    output = await ok(executor, session, "fs.read_file", {"path": "accents.txt", "max_bytes": 5})
    assert output["encoding"] == "utf8"
    assert output["content"] == "éé"
    assert output["truncated"] is True


async def test_read_file_default_limit_is_64_kib(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    (workspace / "big.txt").write_bytes(b"a" * (100 * 1024))
    output = await ok(executor, session, "fs.read_file", {"path": "big.txt"})
    assert len(output["content"]) == 64 * 1024
    assert output["truncated"] is True
    assert output["size_bytes"] == 100 * 1024


async def test_read_file_errors(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    (workspace / "dir").mkdir()
    await fails(executor, session, "fs.read_file", {"path": "dir"}, ErrorCode.INVALID_ARGUMENT)
    await fails(executor, session, "fs.read_file", {"path": "."}, ErrorCode.INVALID_ARGUMENT)
    await fails(executor, session, "fs.read_file", {"path": "missing.txt"}, ErrorCode.NOT_FOUND)
    await fails(executor, session, "fs.read_file", {"path": "../x"}, ErrorCode.POLICY_DENIED)
    await fails(executor, session, "fs.read_file", {"path": "a\x00b"}, ErrorCode.INVALID_ARGUMENT)


async def test_read_file_fifo_is_refused_without_hanging(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    os.mkfifo(workspace / "pipe")
    result = await fails(
        executor, session, "fs.read_file", {"path": "pipe"}, ErrorCode.INVALID_ARGUMENT, timeout=5
    )
    assert result.error is not None
    assert "regular file" in result.error.message


async def test_read_file_symlink_escaping_is_denied(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    outside = outside_dir(workspace)
    os.symlink(outside / "secret.txt", workspace / "leak.txt")
    os.symlink(outside, workspace / "leakdir")
    for path in ("leak.txt", "leakdir/secret.txt"):
        result = await fails(
            executor, session, "fs.read_file", {"path": path}, ErrorCode.POLICY_DENIED
        )
        assert "top secret" not in str(result.output)


async def test_read_file_follows_symlink_inside_workspace(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    (workspace / "real.txt").write_text("real")
    os.symlink("real.txt", workspace / "alias.txt")
    output = await ok(executor, session, "fs.read_file", {"path": "alias.txt"})
    assert output["content"] == "real"


async def test_read_file_respects_allowed_paths(
    executor: ExecutionService, workspace: Path
) -> None:
    (workspace / "sandbox").mkdir()
    (workspace / "sandbox" / "ok.txt").write_text("ok")
    (workspace / "private.txt").write_text("no")
    limited = make_session(workspace, ["sandbox"])
    assert (await ok(executor, limited, "fs.read_file", {"path": "sandbox/ok.txt"}))[
        "content"
    ] == "ok"
    await fails(executor, limited, "fs.read_file", {"path": "private.txt"}, ErrorCode.POLICY_DENIED)


# fs.write_file ----------------------------------------------------------------------------------


async def test_write_file_creates_parents_by_default(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    content = "hello wörld\n"
    output = await ok(executor, session, "fs.write_file", {"path": "a/b/c.txt", "content": content})
    data = content.encode()
    assert output == {
        "path": "a/b/c.txt",
        "bytes_written": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    target = workspace / "a" / "b" / "c.txt"
    assert target.read_bytes() == data
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert os.listdir(target.parent) == ["c.txt"]  # no temporary file left over


async def test_write_file_without_create_parents_needs_parent(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    await fails(
        executor,
        session,
        "fs.write_file",
        {"path": "missing/c.txt", "content": "x", "create_parents": False},
        ErrorCode.NOT_FOUND,
    )
    assert not (workspace / "missing").exists()
    output = await ok(
        executor,
        session,
        "fs.write_file",
        {"path": "top.txt", "content": "x", "create_parents": False},
    )
    assert output["bytes_written"] == 1


async def test_write_file_base64(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    data = b"\x00\xff\x10binary"
    output = await ok(
        executor,
        session,
        "fs.write_file",
        {"path": "blob.bin", "content": base64.b64encode(data).decode(), "encoding": "base64"},
    )
    assert (workspace / "blob.bin").read_bytes() == data
    assert output["bytes_written"] == len(data)
    assert output["sha256"] == hashlib.sha256(data).hexdigest()


async def test_write_file_invalid_base64(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    await fails(
        executor,
        session,
        "fs.write_file",
        {"path": "blob.bin", "content": "not base64!!", "encoding": "base64"},
        ErrorCode.INVALID_ARGUMENT,
    )
    assert not (workspace / "blob.bin").exists()


async def test_write_file_size_limit(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    await fails(
        executor,
        session,
        "fs.write_file",
        {"path": "big.txt", "content": "x" * (MIB + 1)},
        ErrorCode.INVALID_ARGUMENT,
    )
    await fails(
        executor,
        session,
        "fs.write_file",
        {
            "path": "big.bin",
            "content": base64.b64encode(b"x" * (MIB + 1)).decode(),
            "encoding": "base64",
        },
        ErrorCode.INVALID_ARGUMENT,
    )
    assert os.listdir(workspace) == []
    output = await ok(executor, session, "fs.write_file", {"path": "max.txt", "content": "x" * MIB})
    assert output["bytes_written"] == MIB


async def test_write_file_overwrite_keeps_mode(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    target = workspace / "script.sh"
    target.write_text("old")
    os.chmod(target, 0o750)
    await ok(executor, session, "fs.write_file", {"path": "script.sh", "content": "new"})
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o750


async def test_write_file_refuses_directories_and_root(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    (workspace / "dir").mkdir()
    await fails(
        executor,
        session,
        "fs.write_file",
        {"path": "dir", "content": "x"},
        ErrorCode.INVALID_ARGUMENT,
    )
    await fails(
        executor,
        session,
        "fs.write_file",
        {"path": "/", "content": "x"},
        ErrorCode.INVALID_ARGUMENT,
    )
    assert (workspace / "dir").is_dir()


async def test_write_file_through_symlink_outside_is_denied(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    outside = outside_dir(workspace)
    os.symlink(outside / "secret.txt", workspace / "link.txt")
    os.symlink(outside, workspace / "linkdir")
    for path in ("link.txt", "linkdir/secret.txt", "linkdir/new.txt"):
        await fails(
            executor,
            session,
            "fs.write_file",
            {"path": path, "content": "pwned"},
            ErrorCode.POLICY_DENIED,
        )
    assert (outside / "secret.txt").read_text() == "top secret\n"
    assert not (outside / "new.txt").exists()
    assert (workspace / "link.txt").is_symlink()


# fs.mkdir ---------------------------------------------------------------------------------------


async def test_mkdir_defaults(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    output = await ok(executor, session, "fs.mkdir", {"path": "x/y/z"})
    assert output == {"path": "x/y/z", "created": True, "mode": "0755"}
    assert (workspace / "x" / "y" / "z").is_dir()
    assert stat.S_IMODE((workspace / "x" / "y" / "z").stat().st_mode) == 0o755
    again = await ok(executor, session, "fs.mkdir", {"path": "x/y/z"})
    assert again["created"] is False


async def test_mkdir_exist_ok_false(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    (workspace / "d").mkdir()
    await fails(
        executor, session, "fs.mkdir", {"path": "d", "exist_ok": False}, ErrorCode.INVALID_ARGUMENT
    )
    output = await ok(executor, session, "fs.mkdir", {"path": "e", "exist_ok": False})
    assert output["created"] is True


async def test_mkdir_mode(executor: ExecutionService, session: Session, workspace: Path) -> None:
    output = await ok(executor, session, "fs.mkdir", {"path": "private", "mode": "0700"})
    assert output["mode"] == "0700"
    assert stat.S_IMODE((workspace / "private").stat().st_mode) == 0o700
    output = await ok(executor, session, "fs.mkdir", {"path": "shared", "mode": "775"})
    assert output["mode"] == "0775"
    await fails(
        executor, session, "fs.mkdir", {"path": "bad", "mode": "999"}, ErrorCode.INVALID_ARGUMENT
    )
    assert not (workspace / "bad").exists()


async def test_mkdir_errors(executor: ExecutionService, session: Session, workspace: Path) -> None:
    (workspace / "file").write_text("x")
    await fails(executor, session, "fs.mkdir", {"path": "file"}, ErrorCode.INVALID_ARGUMENT)
    await fails(
        executor,
        session,
        "fs.mkdir",
        {"path": "no/parent", "create_parents": False},
        ErrorCode.NOT_FOUND,
    )
    assert not (workspace / "no").exists()
    outside = outside_dir(workspace)
    os.symlink(outside, workspace / "linkdir")
    await fails(executor, session, "fs.mkdir", {"path": "linkdir/new"}, ErrorCode.POLICY_DENIED)
    assert not (outside / "new").exists()


# fs.move ----------------------------------------------------------------------------------------


async def test_move_renames(executor: ExecutionService, session: Session, workspace: Path) -> None:
    (workspace / "a.txt").write_text("A")
    output = await ok(
        executor, session, "fs.move", {"source_path": "a.txt", "destination_path": "sub/dir/b.txt"}
    )
    assert output == {"source_path": "a.txt", "destination_path": "sub/dir/b.txt", "moved": True}
    assert not (workspace / "a.txt").exists()
    assert (workspace / "sub" / "dir" / "b.txt").read_text() == "A"


async def test_move_existing_destination_needs_overwrite(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    (workspace / "a.txt").write_text("A")
    (workspace / "b.txt").write_text("B")
    args = {"source_path": "a.txt", "destination_path": "b.txt"}
    await fails(executor, session, "fs.move", args, ErrorCode.INVALID_ARGUMENT)
    assert (workspace / "a.txt").read_text() == "A"
    assert (workspace / "b.txt").read_text() == "B"
    await ok(executor, session, "fs.move", args | {"overwrite": True})
    assert not (workspace / "a.txt").exists()
    assert (workspace / "b.txt").read_text() == "A"


async def test_move_directory_over_directory_with_overwrite(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    (workspace / "src").mkdir()
    (workspace / "src" / "new.txt").write_text("new")
    (workspace / "dst").mkdir()
    (workspace / "dst" / "old.txt").write_text("old")
    await ok(
        executor,
        session,
        "fs.move",
        {"source_path": "src", "destination_path": "dst", "overwrite": True},
    )
    assert sorted(os.listdir(workspace / "dst")) == ["new.txt"]


async def test_move_directory_into_itself_is_refused(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    (workspace / "d" / "sub").mkdir(parents=True)
    for destination in ("d/sub/inner", "d"):
        await fails(
            executor,
            session,
            "fs.move",
            {"source_path": "d", "destination_path": destination, "overwrite": True},
            ErrorCode.INVALID_ARGUMENT,
        )
    assert (workspace / "d" / "sub").is_dir()


async def test_move_onto_own_ancestor_does_not_lose_data(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    (workspace / "a" / "b").mkdir(parents=True)
    (workspace / "a" / "b" / "keep.txt").write_text("keep")
    (workspace / "a" / "other.txt").write_text("other")
    result = await run(
        executor,
        session,
        "fs.move",
        {"source_path": "a/b", "destination_path": "a", "overwrite": True},
    )
    assert result.error is not None
    assert result.error.code == ErrorCode.INVALID_ARGUMENT
    assert (workspace / "a" / "b" / "keep.txt").read_text() == "keep"
    assert (workspace / "a" / "other.txt").read_text() == "other"


async def test_move_errors(executor: ExecutionService, session: Session, workspace: Path) -> None:
    (workspace / "a.txt").write_text("A")
    await fails(
        executor,
        session,
        "fs.move",
        {"source_path": ".", "destination_path": "x"},
        ErrorCode.POLICY_DENIED,
    )
    await fails(
        executor,
        session,
        "fs.move",
        {"source_path": "/", "destination_path": "x"},
        ErrorCode.POLICY_DENIED,
    )
    await fails(
        executor,
        session,
        "fs.move",
        {"source_path": "missing", "destination_path": "x"},
        ErrorCode.NOT_FOUND,
    )
    await fails(
        executor,
        session,
        "fs.move",
        {"source_path": "a.txt", "destination_path": "../escaped.txt"},
        ErrorCode.POLICY_DENIED,
    )
    outside = outside_dir(workspace)
    os.symlink(outside, workspace / "linkdir")
    await fails(
        executor,
        session,
        "fs.move",
        {"source_path": "a.txt", "destination_path": "linkdir/a.txt"},
        ErrorCode.POLICY_DENIED,
    )
    assert (workspace / "a.txt").read_text() == "A"
    assert not (outside / "a.txt").exists()
    assert not (workspace.parent / "escaped.txt").exists()


async def test_move_symlink_moves_the_link(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    outside = outside_dir(workspace)
    os.symlink(outside / "secret.txt", workspace / "link")
    await ok(executor, session, "fs.move", {"source_path": "link", "destination_path": "link2"})
    assert (workspace / "link2").is_symlink()
    assert os.readlink(workspace / "link2") == str(outside / "secret.txt")
    assert (outside / "secret.txt").read_text() == "top secret\n"


# fs.copy ----------------------------------------------------------------------------------------


async def test_copy_file(executor: ExecutionService, session: Session, workspace: Path) -> None:
    (workspace / "a.sh").write_text("echo hi")
    os.chmod(workspace / "a.sh", 0o755)
    output = await ok(
        executor, session, "fs.copy", {"source_path": "a.sh", "destination_path": "bin/b.sh"}
    )
    assert output == {
        "source_path": "a.sh",
        "destination_path": "bin/b.sh",
        "copied": True,
        "type": "file",
    }
    assert (workspace / "a.sh").read_text() == "echo hi"
    assert (workspace / "bin" / "b.sh").read_text() == "echo hi"
    assert stat.S_IMODE((workspace / "bin" / "b.sh").stat().st_mode) == 0o755


async def test_copy_existing_destination_needs_overwrite(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    (workspace / "a.txt").write_text("A")
    (workspace / "b.txt").write_text("B")
    args = {"source_path": "a.txt", "destination_path": "b.txt"}
    await fails(executor, session, "fs.copy", args, ErrorCode.INVALID_ARGUMENT)
    assert (workspace / "b.txt").read_text() == "B"
    await ok(executor, session, "fs.copy", args | {"overwrite": True})
    assert (workspace / "b.txt").read_text() == "A"


async def test_copy_directory_needs_recursive(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    (workspace / "src" / "pkg").mkdir(parents=True)
    (workspace / "src" / "a.txt").write_text("a")
    (workspace / "src" / "pkg" / "b.txt").write_text("b")
    args = {"source_path": "src", "destination_path": "backup"}
    await fails(executor, session, "fs.copy", args, ErrorCode.INVALID_ARGUMENT)
    assert not (workspace / "backup").exists()
    output = await ok(executor, session, "fs.copy", args | {"recursive": True})
    assert output["type"] == "dir"
    assert (workspace / "backup" / "a.txt").read_text() == "a"
    assert (workspace / "backup" / "pkg" / "b.txt").read_text() == "b"
    assert (workspace / "src" / "pkg" / "b.txt").read_text() == "b"


async def test_copy_recursive_skips_symlinks(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    outside = outside_dir(workspace)
    (workspace / "src").mkdir()
    (workspace / "src" / "real.txt").write_text("real")
    os.symlink(outside / "secret.txt", workspace / "src" / "file_link")
    os.symlink(outside, workspace / "src" / "dir_link")
    await ok(
        executor,
        session,
        "fs.copy",
        {"source_path": "src", "destination_path": "dst", "recursive": True},
    )
    assert sorted(os.listdir(workspace / "dst")) == ["real.txt"]
    assert not (workspace / "dst" / "secret.txt").exists()


async def test_copy_refuses_symlink_source(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    (workspace / "real.txt").write_text("real")
    os.symlink("real.txt", workspace / "link.txt")
    await fails(
        executor,
        session,
        "fs.copy",
        {"source_path": "link.txt", "destination_path": "copy.txt"},
        ErrorCode.INVALID_ARGUMENT,
    )
    assert not (workspace / "copy.txt").exists()


async def test_copy_directory_into_itself_or_ancestor_is_refused(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    (workspace / "a" / "b").mkdir(parents=True)
    (workspace / "a" / "b" / "keep.txt").write_text("keep")
    await fails(
        executor,
        session,
        "fs.copy",
        {"source_path": "a", "destination_path": "a/b/c", "recursive": True},
        ErrorCode.INVALID_ARGUMENT,
    )
    await fails(
        executor,
        session,
        "fs.copy",
        {"source_path": "a/b", "destination_path": "a", "recursive": True, "overwrite": True},
        ErrorCode.INVALID_ARGUMENT,
    )
    assert (workspace / "a" / "b" / "keep.txt").read_text() == "keep"
    assert not (workspace / "a" / "b" / "c").exists()


async def test_copy_errors(executor: ExecutionService, session: Session, workspace: Path) -> None:
    os.mkfifo(workspace / "pipe")
    await fails(
        executor,
        session,
        "fs.copy",
        {"source_path": "missing", "destination_path": "x"},
        ErrorCode.NOT_FOUND,
    )
    await fails(
        executor,
        session,
        "fs.copy",
        {"source_path": "pipe", "destination_path": "x"},
        ErrorCode.INVALID_ARGUMENT,
        timeout=5,
    )
    (workspace / "a.txt").write_text("A")
    await fails(
        executor,
        session,
        "fs.copy",
        {"source_path": "a.txt", "destination_path": "../x.txt"},
        ErrorCode.POLICY_DENIED,
    )
    assert not (workspace.parent / "x.txt").exists()


# fs.delete --------------------------------------------------------------------------------------


async def test_delete_file(executor: ExecutionService, session: Session, workspace: Path) -> None:
    (workspace / "a.txt").write_text("A")
    output = await ok(executor, session, "fs.delete", {"path": "a.txt"})
    assert output == {"path": "a.txt", "deleted": True, "existed": True}
    assert not (workspace / "a.txt").exists()


async def test_delete_directory_needs_recursive(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    (workspace / "d" / "e").mkdir(parents=True)
    (workspace / "d" / "e" / "f.txt").write_text("f")
    await fails(executor, session, "fs.delete", {"path": "d"}, ErrorCode.INVALID_ARGUMENT)
    assert (workspace / "d" / "e" / "f.txt").exists()
    output = await ok(executor, session, "fs.delete", {"path": "d", "recursive": True})
    assert output["deleted"] is True
    assert not (workspace / "d").exists()


@pytest.mark.parametrize("root", [".", "/", "", "a/..", "./"])
async def test_delete_refuses_workspace_root(
    executor: ExecutionService, session: Session, workspace: Path, root: str
) -> None:
    (workspace / "keep.txt").write_text("keep")
    await fails(
        executor, session, "fs.delete", {"path": root, "recursive": True}, ErrorCode.POLICY_DENIED
    )
    assert (workspace / "keep.txt").read_text() == "keep"


async def test_delete_missing(executor: ExecutionService, session: Session) -> None:
    output = await ok(executor, session, "fs.delete", {"path": "missing", "force": True})
    assert output == {"path": "missing", "deleted": False, "existed": False}
    await fails(executor, session, "fs.delete", {"path": "missing"}, ErrorCode.NOT_FOUND)


async def test_delete_symlink_removes_link_not_target(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    outside = outside_dir(workspace)
    os.symlink(outside, workspace / "dirlink")
    (workspace / "real.txt").write_text("real")
    os.symlink("real.txt", workspace / "filelink")
    await ok(executor, session, "fs.delete", {"path": "dirlink", "recursive": True})
    await ok(executor, session, "fs.delete", {"path": "filelink"})
    assert not os.path.lexists(workspace / "dirlink")
    assert not os.path.lexists(workspace / "filelink")
    assert (outside / "secret.txt").read_text() == "top secret\n"
    assert (workspace / "real.txt").read_text() == "real"


async def test_delete_through_symlinked_parent_is_denied(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    outside = outside_dir(workspace)
    os.symlink(outside, workspace / "dirlink")
    await fails(
        executor, session, "fs.delete", {"path": "dirlink/secret.txt"}, ErrorCode.POLICY_DENIED
    )
    assert (outside / "secret.txt").exists()


# fs.stat ----------------------------------------------------------------------------------------


async def test_stat_file_and_directory(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    (workspace / "a.txt").write_text("12345")
    os.chmod(workspace / "a.txt", 0o600)
    output = await ok(executor, session, "fs.stat", {"path": "a.txt"})
    assert output["path"] == "a.txt"
    assert output["exists"] is True
    assert output["type"] == "file"
    assert output["size_bytes"] == 5
    assert output["mode"] == "0600"
    assert (
        abs(
            datetime.fromisoformat(output["modified_at"]).timestamp()
            - (workspace / "a.txt").stat().st_mtime
        )
        < 1
    )
    (workspace / "d").mkdir()
    assert (await ok(executor, session, "fs.stat", {"path": "d"}))["type"] == "dir"
    assert (await ok(executor, session, "fs.stat", {"path": "."}))["type"] == "dir"


async def test_stat_missing(executor: ExecutionService, session: Session) -> None:
    output = await ok(executor, session, "fs.stat", {"path": "nope/missing.txt"})
    assert output == {"path": "nope/missing.txt", "exists": False}


async def test_stat_symlink_is_reported_not_followed(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    outside = outside_dir(workspace)
    os.symlink(outside / "secret.txt", workspace / "link")
    output = await ok(executor, session, "fs.stat", {"path": "link"})
    assert output["exists"] is True
    assert output["type"] == "symlink"
    assert output["size_bytes"] == len(str(outside / "secret.txt"))
    await fails(executor, session, "fs.stat", {"path": "../outside"}, ErrorCode.POLICY_DENIED)


# fs.patch ---------------------------------------------------------------------------------------


async def test_patch_applies_in_plain_directory(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    (workspace / "hello.txt").write_text("old\n")
    result = await run(
        executor, session, "fs.patch", {"unified_diff": modify_diff("hello.txt", "old", "new")}
    )
    assert result.error is None, result.output
    assert result.exit_code == 0
    assert result.output["applied"] is True
    assert result.output["strategy"] == "reject_on_conflict"
    assert result.output["changed_paths"] == ["hello.txt"]
    assert (workspace / "hello.txt").read_text() == "new\n"


async def test_patch_creates_new_file(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    diff = (
        "diff --git a/pkg/new.txt b/pkg/new.txt\n"
        "new file mode 100644\n"
        "--- /dev/null\n"
        "+++ b/pkg/new.txt\n"
        "@@ -0,0 +1,2 @@\n"
        "+line one\n"
        "+line two\n"
    )
    output = await ok(executor, session, "fs.patch", {"unified_diff": diff})
    assert output["changed_paths"] == ["pkg/new.txt"]
    assert (workspace / "pkg" / "new.txt").read_text() == "line one\nline two\n"


async def test_patch_in_git_repository(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    git(workspace, "init", "-q")
    (workspace / "hello.txt").write_text("old\n")
    (workspace / "other.txt").write_text("one\n")
    git(workspace, "add", ".")
    git(workspace, "commit", "-q", "-m", "init")
    output = await ok(
        executor, session, "fs.patch", {"unified_diff": modify_diff("hello.txt", "old", "new")}
    )
    assert output["applied"] is True
    assert (workspace / "hello.txt").read_text() == "new\n"
    assert git(workspace, "diff", "--cached", "--name-only") == ""  # plain apply: worktree only
    output = await ok(
        executor,
        session,
        "fs.patch",
        {"unified_diff": modify_diff("other.txt", "one", "two"), "strategy": "apply"},
    )
    assert output["strategy"] == "apply"
    assert (workspace / "other.txt").read_text() == "two\n"
    # --3way implies --index: the change is staged too.
    assert git(workspace, "diff", "--cached", "--name-only").split() == ["other.txt"]


async def test_patch_stays_in_workspace_nested_in_a_parent_repository(
    executor: ExecutionService, session: Session, workspace: Path, tmp_path: Path
) -> None:
    git(tmp_path, "init", "-q")
    (workspace / "hello.txt").write_text("old\n")
    output = await ok(
        executor, session, "fs.patch", {"unified_diff": modify_diff("hello.txt", "old", "new")}
    )
    assert output["applied"] is True
    # Without GIT_CEILING_DIRECTORIES git would treat the patch as relative to tmp_path and
    # silently skip it.
    assert (workspace / "hello.txt").read_text() == "new\n"
    assert not (tmp_path / "hello.txt").exists()


async def test_patch_escaping_workspace_is_denied(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    outside = workspace.parent / "outside.txt"
    outside.write_text("old\n")
    (workspace / "hello.txt").write_text("old\n")
    diff = modify_diff("hello.txt", "old", "new") + modify_diff("../outside.txt", "old", "new")
    await fails(executor, session, "fs.patch", {"unified_diff": diff}, ErrorCode.POLICY_DENIED)
    assert outside.read_text() == "old\n"
    assert (workspace / "hello.txt").read_text() == "old\n"


async def test_patch_absolute_path_outside_allowed_paths_is_denied(
    executor: ExecutionService, workspace: Path
) -> None:
    session = make_session(workspace, ["sandbox"])
    (workspace / "sandbox").mkdir()
    (workspace / "sandbox" / "ok.txt").write_text("old\n")
    (workspace / "etc").mkdir()
    (workspace / "etc" / "passwd").write_text("old\n")
    diff = modify_diff("sandbox/ok.txt", "old", "new") + (
        "--- /etc/passwd\n+++ /etc/passwd\n@@ -1 +1 @@\n-old\n+new\n"
    )
    await fails(executor, session, "fs.patch", {"unified_diff": diff}, ErrorCode.POLICY_DENIED)
    assert (workspace / "etc" / "passwd").read_text() == "old\n"
    assert (workspace / "sandbox" / "ok.txt").read_text() == "old\n"


async def test_patch_target_is_what_git_applies_not_the_raw_header(
    executor: ExecutionService, workspace: Path
) -> None:
    # git apply strips one leading component (-p1) whatever it is: "sandbox/foo" means "foo".
    (workspace / "sandbox").mkdir()
    (workspace / "sandbox" / "foo").write_text("old\n")
    (workspace / "foo").write_text("old\n")
    diff = "--- sandbox/foo\n+++ sandbox/foo\n@@ -1 +1 @@\n-old\n+new\n"
    limited = make_session(workspace, ["sandbox"])
    await fails(executor, limited, "fs.patch", {"unified_diff": diff}, ErrorCode.POLICY_DENIED)
    assert (workspace / "foo").read_text() == "old\n"
    assert (workspace / "sandbox" / "foo").read_text() == "old\n"
    everything = make_session(workspace, ["."])
    output = await ok(executor, everything, "fs.patch", {"unified_diff": diff})
    assert output["changed_paths"] == ["foo"]
    assert (workspace / "foo").read_text() == "new\n"


async def test_patch_git_header_without_file_lines_is_checked(
    executor: ExecutionService, workspace: Path
) -> None:
    # An empty new file has only a "diff --git" header: git still creates it.
    (workspace / "sandbox").mkdir()
    (workspace / "sandbox" / "ok.txt").write_text("old\n")
    diff = modify_diff("sandbox/ok.txt", "old", "new") + (
        "diff --git a/etc/planted b/etc/planted\nnew file mode 100644\nindex 0000000..e69de29\n"
    )
    limited = make_session(workspace, ["sandbox"])
    await fails(executor, limited, "fs.patch", {"unified_diff": diff}, ErrorCode.POLICY_DENIED)
    assert not (workspace / "etc").exists()
    assert (workspace / "sandbox" / "ok.txt").read_text() == "old\n"


async def test_patch_rename_outside_allowed_paths_is_denied(
    executor: ExecutionService, workspace: Path
) -> None:
    (workspace / "sandbox").mkdir()
    (workspace / "sandbox" / "a.txt").write_text("a\n")
    diff = (
        "diff --git a/sandbox/a.txt b/elsewhere/a.txt\n"
        "similarity index 100%\n"
        "rename from sandbox/a.txt\n"
        "rename to elsewhere/a.txt\n"
    )
    limited = make_session(workspace, ["sandbox"])
    await fails(executor, limited, "fs.patch", {"unified_diff": diff}, ErrorCode.POLICY_DENIED)
    assert (workspace / "sandbox" / "a.txt").read_text() == "a\n"
    assert not (workspace / "elsewhere").exists()
    output = await ok(executor, make_session(workspace), "fs.patch", {"unified_diff": diff})
    assert output["changed_paths"] == ["elsewhere/a.txt", "sandbox/a.txt"]
    assert (workspace / "elsewhere" / "a.txt").read_text() == "a\n"
    assert not (workspace / "sandbox" / "a.txt").exists()


async def test_patch_failure_is_atomic(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    (workspace / "a.txt").write_text("one\n")
    (workspace / "b.txt").write_text("two\n")
    diff = modify_diff("a.txt", "one", "ONE") + modify_diff("b.txt", "zzz", "TWO")
    result = await fails(
        executor, session, "fs.patch", {"unified_diff": diff}, ErrorCode.EXECUTION_FAILED
    )
    assert result.exit_code not in (0, 124)
    assert result.output["applied"] is False
    assert result.output["changed_paths"] == []
    assert "b.txt" in result.output["output"]
    assert result.error is not None and result.error.message.startswith("patch did not apply")
    assert (workspace / "a.txt").read_text() == "one\n"
    assert (workspace / "b.txt").read_text() == "two\n"


async def test_patch_without_file_headers_is_invalid(
    executor: ExecutionService, session: Session
) -> None:
    await fails(
        executor,
        session,
        "fs.patch",
        {"unified_diff": "@@ -1 +1 @@\n-a\n+b\n"},
        ErrorCode.INVALID_ARGUMENT,
    )


# fs.search --------------------------------------------------------------------------------------


async def test_search_finds_matches(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    (workspace / "src").mkdir()
    (workspace / "src" / "a.py").write_text("import os\n\ndef main():\n    pass\n")
    (workspace / "b.py").write_text("def main_helper(): ...\n")
    (workspace / "c.txt").write_text("nothing here\n")
    output = await ok(executor, session, "fs.search", {"pattern": r"def main\w*\("})
    assert output["truncated"] is False
    assert output["count"] == 2
    matches = sorted(output["matches"], key=lambda match: match["path"])
    assert matches == [
        {"path": "b.py", "line": 1, "snippet": "def main_helper(): ..."},
        {"path": "src/a.py", "line": 3, "snippet": "def main():"},
    ]
    only_src = await ok(executor, session, "fs.search", {"pattern": "def", "path": "src"})
    assert [match["path"] for match in only_src["matches"]] == ["src/a.py"]
    one_file = await ok(executor, session, "fs.search", {"pattern": "import", "path": "src/a.py"})
    assert one_file["matches"] == [{"path": "src/a.py", "line": 1, "snippet": "import os"}]


async def test_search_max_results_truncates(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    (workspace / "many.txt").write_text("hit\n" * 10)
    output = await ok(executor, session, "fs.search", {"pattern": "hit", "max_results": 3})
    assert output["count"] == 3
    assert output["truncated"] is True
    assert [match["line"] for match in output["matches"]] == [1, 2, 3]
    exact = await ok(executor, session, "fs.search", {"pattern": "hit", "max_results": 10})
    assert exact["count"] == 10
    assert exact["truncated"] is False


async def test_search_skips_git_binary_and_symlinks(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    (workspace / ".git").mkdir()
    (workspace / ".git" / "config").write_text("needle\n")
    (workspace / "binary.bin").write_bytes(b"needle\x00\x01\x02needle\n")
    outside = outside_dir(workspace)
    (outside / "secret.txt").write_text("needle in the secret\n")
    os.symlink(outside / "secret.txt", workspace / "file_link")
    os.symlink(outside, workspace / "dir_link")
    (workspace / "text.txt").write_text("a needle\n")
    output = await ok(executor, session, "fs.search", {"pattern": "needle"})
    assert output["matches"] == [{"path": "text.txt", "line": 1, "snippet": "a needle"}]


async def test_search_snippet_is_bounded(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    (workspace / "long.txt").write_text("x" * 2000 + "needle\n")
    output = await ok(executor, session, "fs.search", {"pattern": "needle"})
    assert len(output["matches"][0]["snippet"]) == 512


@pytest.mark.parametrize("pattern", ["(", "a[", r"(a)\1"])
async def test_search_invalid_pattern(
    executor: ExecutionService, session: Session, workspace: Path, pattern: str
) -> None:
    (workspace / "a.txt").write_text("a\n")
    await fails(executor, session, "fs.search", {"pattern": pattern}, ErrorCode.INVALID_ARGUMENT)


async def test_search_errors(executor: ExecutionService, session: Session) -> None:
    await fails(
        executor, session, "fs.search", {"pattern": "x", "path": "missing"}, ErrorCode.NOT_FOUND
    )
    await fails(
        executor, session, "fs.search", {"pattern": "x", "path": ".."}, ErrorCode.POLICY_DENIED
    )


async def test_search_catastrophic_pattern_completes(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    (workspace / "evil.txt").write_text("a" * 50_000 + "b\naaaa\n")
    result = await run(executor, session, "fs.search", {"pattern": "(a+)+$"}, timeout=30)
    assert result.error is None, result.error
    assert result.output["matches"] == [{"path": "evil.txt", "line": 2, "snippet": "aaaa"}]


async def test_a_copy_past_its_deadline_leaves_no_destination(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    with (workspace / "big.bin").open("wb") as handle:
        handle.truncate(512 * 1024 * 1024)  # sparse: quick to make, slow to copy
    result = await run(
        executor,
        session,
        "fs.copy",
        {"source_path": "big.bin", "destination_path": "copy.bin"},
        timeout=0.05,
    )
    assert result.error is not None and result.error.code == "timeout"
    # The copy's thread stops at its next chunk and removes what it wrote.
    deadline = time.monotonic() + 10
    while (workspace / "copy.bin").exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not (workspace / "copy.bin").exists()
    assert not [name for name in os.listdir(workspace) if name != "big.bin"]
