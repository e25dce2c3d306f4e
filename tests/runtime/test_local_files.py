"""LocalFiles on a real temporary directory: every file operation, its errors, the owner hand-off
and the symlink rules."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from serve_app.domain.errors import ErrorCode, ServiceError
from serve_app.runtime import local_files
from serve_app.runtime.interface import FileInfo
from serve_app.runtime.local_files import COPY_CHUNK_BYTES, LocalFiles
from tests.support.execution import make_workspace


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return make_workspace(tmp_path)


@pytest.fixture
def files(workspace: Path) -> LocalFiles:
    return LocalFiles(workspace, ["."])


def outside_dir(workspace: Path) -> Path:
    outside = workspace.parent / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "secret.txt").write_text("top secret\n")
    return outside


def raises(code: ErrorCode, message: str | None = None) -> pytest.RaisesExc[ServiceError]:
    match = None if message is None else f"^{code}: {message}$".replace("?", r"\?")
    return pytest.raises(ServiceError, match=match)


def owners(root: Path) -> dict[str, tuple[int, int]]:
    """(uid, gid) of everything under `root`, never following symlinks."""
    found = {}
    for directory, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(directory, name)
            info = path.lstat()
            found[path.relative_to(root).as_posix()] = (info.st_uid, info.st_gid)
    return found


# resolve and stat -------------------------------------------------------------------------------


def test_resolve_goes_through_the_jail(files: LocalFiles, workspace: Path) -> None:
    target = files.resolve("/a/b.txt")
    assert (target.requested, target.relative) == ("a/b.txt", "a/b.txt")
    assert str(target.real) == os.path.join(os.path.realpath(workspace), "a", "b.txt")
    assert files.resolve(".").is_root
    with raises(ErrorCode.POLICY_DENIED, "path escapes workspace"):
        files.resolve("../x")
    narrow = LocalFiles(workspace, ["src"])
    with raises(ErrorCode.POLICY_DENIED, "path outside allowed_paths"):
        narrow.resolve("other/file")
    assert narrow.resolve("src/file").relative == "src/file"


def test_stat_reports_entries_relative_to_the_real_workspace(
    tmp_path: Path, workspace: Path
) -> None:
    (workspace / "a.txt").write_text("12345")
    os.chmod(workspace / "a.txt", 0o640)
    (workspace / "d").mkdir()
    alias = tmp_path / "alias"
    alias.symlink_to(workspace)
    files = LocalFiles(alias, ["."])  # FileInfo.path is computed from the real path
    info = files.stat(files.resolve("a.txt"))
    assert info == FileInfo(
        path="a.txt",
        kind="file",
        size_bytes=5,
        mode=0o640,
        modified_at=(workspace / "a.txt").stat().st_mtime,
    )
    directory = files.stat(files.resolve("d"))
    assert directory is not None and (directory.path, directory.kind) == ("d", "dir")
    root = files.stat(files.resolve("."))
    assert root is not None and (root.path, root.kind) == (".", "dir")
    assert files.stat(files.resolve("missing")) is None
    assert files.stat(files.resolve("a.txt/below")) is None


def test_stat_does_not_follow_a_final_symlink(files: LocalFiles, workspace: Path) -> None:
    outside = outside_dir(workspace)
    os.symlink(outside / "secret.txt", workspace / "link")
    os.mkfifo(workspace / "pipe")
    info = files.stat(files.resolve("link", follow_final=False))
    assert info is not None
    assert (info.path, info.kind, info.size_bytes) == (
        "link",
        "symlink",
        len(str(outside / "secret.txt")),
    )
    pipe = files.stat(files.resolve("pipe"))
    assert pipe is not None and pipe.kind == "other"


# read_file --------------------------------------------------------------------------------------


def test_read_file_prefix_and_size(files: LocalFiles, workspace: Path) -> None:
    (workspace / "data.txt").write_bytes(b"0123456789" * 10)
    content = files.read_file(files.resolve("data.txt"), max_bytes=15)
    assert (content.data, content.size_bytes, content.truncated) == (b"012345678901234", 100, True)
    whole = files.read_file(files.resolve("data.txt"), max_bytes=100)
    assert (len(whole.data), whole.truncated) == (100, False)


def test_read_file_errors(files: LocalFiles, workspace: Path) -> None:
    (workspace / "dir").mkdir()
    os.mkfifo(workspace / "pipe")
    with raises(ErrorCode.NOT_FOUND, "file not found: missing.txt"):
        files.read_file(files.resolve("missing.txt"), max_bytes=10)
    with raises(ErrorCode.INVALID_ARGUMENT, "path is a directory: dir"):
        files.read_file(files.resolve("dir"), max_bytes=10)
    with raises(ErrorCode.INVALID_ARGUMENT, "not a regular file: pipe"):
        files.read_file(files.resolve("pipe"), max_bytes=10)  # O_NONBLOCK: no hang


def test_read_file_never_opens_through_a_final_symlink(files: LocalFiles, workspace: Path) -> None:
    (workspace / "real.txt").write_text("real")
    os.symlink("real.txt", workspace / "alias.txt")
    # Resolved without following, the link itself is the target: O_NOFOLLOW refuses it.
    with raises(
        ErrorCode.POLICY_DENIED, "cannot open alias.txt: Too many levels of symbolic links"
    ):
        files.read_file(files.resolve("alias.txt", follow_final=False), max_bytes=10)
    assert files.read_file(files.resolve("alias.txt"), max_bytes=10).data == b"real"


# write_file -------------------------------------------------------------------------------------


def test_write_file_creates_parents_atomically(files: LocalFiles, workspace: Path) -> None:
    files.write_file(files.resolve("a/b/c.txt"), b"hello")
    target = workspace / "a" / "b" / "c.txt"
    assert target.read_bytes() == b"hello"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert os.listdir(target.parent) == ["c.txt"]


def test_write_file_keeps_or_sets_the_mode(files: LocalFiles, workspace: Path) -> None:
    target = workspace / "script.sh"
    target.write_text("old")
    os.chmod(target, 0o750)
    files.write_file(files.resolve("script.sh"), b"new")
    assert (target.read_text(), stat.S_IMODE(target.stat().st_mode)) == ("new", 0o750)
    files.write_file(files.resolve("script.sh"), b"newer", mode=0o600)
    assert (target.read_text(), stat.S_IMODE(target.stat().st_mode)) == ("newer", 0o600)
    files.write_file(files.resolve("fresh.sh"), b"x", mode=0o700)
    assert stat.S_IMODE((workspace / "fresh.sh").stat().st_mode) == 0o700


def test_write_file_errors(files: LocalFiles, workspace: Path) -> None:
    (workspace / "dir").mkdir()
    (workspace / "file").write_text("x")
    with raises(ErrorCode.INVALID_ARGUMENT, "path is the workspace root"):
        files.write_file(files.resolve("/"), b"x")
    with raises(ErrorCode.INVALID_ARGUMENT, "path exists and is not a regular file: dir"):
        files.write_file(files.resolve("dir"), b"x")
    with raises(ErrorCode.NOT_FOUND, "parent directory does not exist: missing/c.txt"):
        files.write_file(files.resolve("missing/c.txt"), b"x", create_parents=False)
    with raises(ErrorCode.INVALID_ARGUMENT, "parent is not a directory: file/c.txt"):
        files.write_file(files.resolve("file/c.txt"), b"x")
    with raises(ErrorCode.INVALID_ARGUMENT, "parent is not a directory: file/deeper/c.txt"):
        files.write_file(files.resolve("file/deeper/c.txt"), b"x")
    assert sorted(os.listdir(workspace)) == ["dir", "file"]


def test_write_file_does_not_follow_a_symlink_swapped_in(
    files: LocalFiles, workspace: Path
) -> None:
    outside = outside_dir(workspace)
    target = files.resolve("link.txt")  # checked while nothing is there
    os.symlink(outside / "secret.txt", workspace / "link.txt")
    with raises(ErrorCode.INVALID_ARGUMENT, "path exists and is not a regular file: link.txt"):
        files.write_file(target, b"pwned")
    assert (outside / "secret.txt").read_text() == "top secret\n"


# list_dir and walk_files ------------------------------------------------------------------------


def test_list_dir_breadth_first_sorted_and_skipping(files: LocalFiles, workspace: Path) -> None:
    (workspace / "b" / "deep").mkdir(parents=True)
    (workspace / "b" / "deep" / "x.txt").write_text("x")
    (workspace / "b" / "a.txt").write_text("a")
    (workspace / ".git" / "objects").mkdir(parents=True)
    (workspace / "z.txt").write_text("z")
    outside = outside_dir(workspace)
    os.symlink(outside, workspace / "link")
    root = files.resolve(".")
    flat = files.list_dir(root, max_entries=100)
    assert [(e.path, e.kind) for e in flat.entries] == [
        (".git", "dir"),
        ("b", "dir"),
        ("link", "symlink"),
        ("z.txt", "file"),
    ]
    deep = files.list_dir(root, recursive=True, max_entries=100)
    assert [e.path for e in deep.entries] == [
        ".git",
        "b",
        "link",
        "z.txt",
        "b/a.txt",
        "b/deep",
        "b/deep/x.txt",
    ]
    assert not deep.truncated
    everything = files.list_dir(root, recursive=True, max_entries=100, skip_dirs=frozenset())
    assert ".git/objects" in [e.path for e in everything.entries]
    cut = files.list_dir(root, recursive=True, max_entries=5)
    assert ([e.path for e in cut.entries][-1], cut.truncated) == ("b/a.txt", True)
    exact = files.list_dir(files.resolve("b"), max_entries=2)
    assert ([e.path for e in exact.entries], exact.truncated) == (["b/a.txt", "b/deep"], False)


def test_list_dir_errors(files: LocalFiles, workspace: Path) -> None:
    (workspace / "file.txt").write_text("x")
    with raises(ErrorCode.NOT_FOUND, "path not found: missing"):
        files.list_dir(files.resolve("missing"), max_entries=10)
    with raises(ErrorCode.INVALID_ARGUMENT, "path is not a directory: file.txt"):
        files.list_dir(files.resolve("file.txt"), max_entries=10)


def test_walk_files_depth_first_regular_files_only(files: LocalFiles, workspace: Path) -> None:
    for name in ("README.md", "dist/app.zip", "dist/nested/lib.tar.gz", "src/main.py", ".git/x"):
        path = workspace / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"z" * len(name))
    outside = outside_dir(workspace)
    os.symlink(outside, workspace / "dir-link")
    os.symlink(outside / "secret.txt", workspace / "file-link")
    os.mkfifo(workspace / "pipe")
    root = files.resolve(".")
    walked = files.walk_files(root, max_files=100)
    assert [(e.path, e.size_bytes) for e in walked.entries] == [
        ("README.md", 9),
        ("dist/app.zip", 12),
        ("dist/nested/lib.tar.gz", 22),
        ("src/main.py", 11),
    ]
    assert all(e.kind == "file" for e in walked.entries) and not walked.truncated
    flat = files.walk_files(files.resolve("dist"), recursive=False, max_files=100)
    assert [e.path for e in flat.entries] == ["dist/app.zip"]
    single = files.walk_files(files.resolve("src/main.py"), max_files=100)
    assert [e.path for e in single.entries] == ["src/main.py"]
    cut = files.walk_files(root, max_files=2)
    assert ([e.path for e in cut.entries], cut.truncated) == (["README.md", "dist/app.zip"], True)
    assert not files.walk_files(root, max_files=4).truncated
    with raises(ErrorCode.NOT_FOUND, "path not found: missing"):
        files.walk_files(files.resolve("missing"), max_files=10)
    with raises(ErrorCode.INVALID_ARGUMENT, "not a file or directory: pipe"):
        files.walk_files(files.resolve("pipe"), max_files=10)


def test_walks_call_the_deadline(workspace: Path) -> None:
    (workspace / "d").mkdir()
    (workspace / "d" / "f.txt").write_text("needle\n")
    calls: list[int] = []

    def deadline() -> None:
        calls.append(1)
        if len(calls) > 1:
            raise ServiceError(ErrorCode.TIMEOUT, "tool deadline exceeded")

    files = LocalFiles(workspace, ["."], deadline=deadline)
    for walk in (
        lambda: files.walk_files(files.resolve("."), max_files=10),
        lambda: files.list_dir(files.resolve("."), recursive=True, max_entries=10),
        lambda: files.search(
            files.resolve("."), lambda line: True, max_results=10, max_text_chars=512
        ),
        lambda: files.copy(files.resolve("d"), files.resolve("e"), recursive=True),
    ):
        calls.clear()
        with raises(ErrorCode.TIMEOUT):
            walk()
    assert not (workspace / "e").exists()


@pytest.mark.parametrize("allowed_checks", [1, 2])
def test_a_single_file_copy_past_its_deadline_stops_and_leaves_nothing(
    workspace: Path, allowed_checks: int
) -> None:
    """Stopped between chunks (1) or once the last one is written (2: one check per chunk of a
    2-chunk file, then one after the copy): either way the caller was told it timed out, so no
    destination may remain."""
    (workspace / "big.bin").write_bytes(b"x" * (COPY_CHUNK_BYTES + 1))
    calls: list[int] = []

    def deadline() -> None:
        calls.append(1)
        if len(calls) > allowed_checks:
            raise ServiceError(ErrorCode.TIMEOUT, "tool deadline exceeded")

    files = LocalFiles(workspace, ["."], deadline=deadline)
    with raises(ErrorCode.TIMEOUT):
        files.copy(files.resolve("big.bin"), files.resolve("copy.bin"))
    assert not (workspace / "copy.bin").exists()
    assert len(calls) == allowed_checks + 1


# mkdir ------------------------------------------------------------------------------------------


def test_mkdir(files: LocalFiles, workspace: Path) -> None:
    assert files.mkdir(files.resolve("x/y/z"), mode=0o700) is True
    assert stat.S_IMODE((workspace / "x" / "y" / "z").stat().st_mode) == 0o700
    assert files.mkdir(files.resolve("x/y/z")) is False
    with raises(ErrorCode.INVALID_ARGUMENT, "directory already exists: x/y/z"):
        files.mkdir(files.resolve("x/y/z"), exist_ok=False)
    (workspace / "file").write_text("x")
    with raises(ErrorCode.INVALID_ARGUMENT, "path exists and is not a directory: file"):
        files.mkdir(files.resolve("file"))
    with raises(ErrorCode.NOT_FOUND, "parent directory does not exist: no/parent"):
        files.mkdir(files.resolve("no/parent"), parents=False)
    with raises(ErrorCode.INVALID_ARGUMENT, "parent is not a directory: file/sub"):
        files.mkdir(files.resolve("file/sub"))
    assert not (workspace / "no").exists()


def test_mkdir_at_the_top_of_a_narrow_allowlist(workspace: Path) -> None:
    files = LocalFiles(workspace, ["sandbox"])
    assert files.mkdir(files.resolve("sandbox")) is True
    assert files.mkdir(files.resolve("sandbox/a/b")) is True


# move, copy, delete -----------------------------------------------------------------------------


def test_move(files: LocalFiles, workspace: Path) -> None:
    (workspace / "a.txt").write_text("A")
    (workspace / "b.txt").write_text("B")
    files.move(files.resolve("a.txt"), files.resolve("sub/dir/c.txt"))
    assert (workspace / "sub" / "dir" / "c.txt").read_text() == "A"
    source, destination = files.resolve("sub/dir/c.txt"), files.resolve("b.txt")
    with raises(ErrorCode.INVALID_ARGUMENT, "destination exists: b.txt"):
        files.move(source, destination)
    files.move(source, destination, overwrite=True)
    assert (workspace / "b.txt").read_text() == "A"
    assert not (workspace / "sub" / "dir" / "c.txt").exists()


def test_move_errors(files: LocalFiles, workspace: Path) -> None:
    (workspace / "d" / "sub").mkdir(parents=True)
    (workspace / "a.txt").write_text("A")
    with raises(ErrorCode.POLICY_DENIED, "cannot move the workspace root"):
        files.move(files.resolve("."), files.resolve("x"))
    with raises(ErrorCode.NOT_FOUND, "source not found: missing"):
        files.move(files.resolve("missing"), files.resolve("x"))
    with raises(ErrorCode.INVALID_ARGUMENT, "destination is the workspace root"):
        files.move(files.resolve("a.txt"), files.resolve("/"))
    with raises(ErrorCode.INVALID_ARGUMENT, "destination is inside the source"):
        files.move(files.resolve("d"), files.resolve("d/sub/inner"))
    with raises(ErrorCode.INVALID_ARGUMENT, "source is inside the destination"):
        files.move(files.resolve("d/sub"), files.resolve("d"), overwrite=True)
    with raises(ErrorCode.NOT_FOUND, "parent directory does not exist: new/a.txt"):
        files.move(files.resolve("a.txt"), files.resolve("new/a.txt"), create_parents=False)
    assert (workspace / "d" / "sub").is_dir() and (workspace / "a.txt").read_text() == "A"


def test_move_a_symlink_moves_the_link(files: LocalFiles, workspace: Path) -> None:
    outside = outside_dir(workspace)
    os.symlink(outside / "secret.txt", workspace / "link")
    files.move(files.resolve("link", follow_final=False), files.resolve("link2"))
    assert os.readlink(workspace / "link2") == str(outside / "secret.txt")


def test_copy_file_and_tree(files: LocalFiles, workspace: Path) -> None:
    (workspace / "src" / "pkg").mkdir(parents=True)
    (workspace / "src" / "a.sh").write_text("echo hi")
    os.chmod(workspace / "src" / "a.sh", 0o755)
    os.chmod(workspace / "src" / "pkg", 0o700)
    (workspace / "src" / "pkg" / "b.txt").write_text("b")
    outside = outside_dir(workspace)
    os.symlink(outside / "secret.txt", workspace / "src" / "file_link")
    os.symlink(outside, workspace / "src" / "dir_link")
    assert files.copy(files.resolve("src/a.sh"), files.resolve("bin/b.sh")) == "file"
    assert (workspace / "bin" / "b.sh").read_text() == "echo hi"
    assert stat.S_IMODE((workspace / "bin" / "b.sh").stat().st_mode) == 0o755
    assert files.copy(files.resolve("src"), files.resolve("dst"), recursive=True) == "dir"
    assert sorted(os.listdir(workspace / "dst")) == ["a.sh", "pkg"]  # symlinks are skipped
    assert (workspace / "dst" / "pkg" / "b.txt").read_text() == "b"
    assert stat.S_IMODE((workspace / "dst" / "pkg").stat().st_mode) == 0o700
    with raises(ErrorCode.INVALID_ARGUMENT, "destination exists: dst"):
        files.copy(files.resolve("src"), files.resolve("dst"), recursive=True)
    (workspace / "dst" / "stale.txt").write_text("stale")
    files.copy(files.resolve("src"), files.resolve("dst"), recursive=True, overwrite=True)
    assert not (workspace / "dst" / "stale.txt").exists()


def test_copy_errors(files: LocalFiles, workspace: Path) -> None:
    (workspace / "d" / "sub").mkdir(parents=True)
    (workspace / "real.txt").write_text("real")
    os.symlink("real.txt", workspace / "link.txt")
    os.mkfifo(workspace / "pipe")
    with raises(ErrorCode.NOT_FOUND, "source not found: missing"):
        files.copy(files.resolve("missing"), files.resolve("x"))
    with raises(ErrorCode.INVALID_ARGUMENT, "fs.copy does not copy symlinks: link.txt"):
        files.copy(files.resolve("link.txt", follow_final=False), files.resolve("x"))
    with raises(ErrorCode.INVALID_ARGUMENT, "source is a directory; set recursive=true: d"):
        files.copy(files.resolve("d"), files.resolve("x"))
    with raises(ErrorCode.INVALID_ARGUMENT, "not a regular file: pipe"):
        files.copy(files.resolve("pipe"), files.resolve("x"))
    with raises(ErrorCode.INVALID_ARGUMENT, "destination is inside the source"):
        files.copy(files.resolve("d"), files.resolve("d/sub/copy"), recursive=True)
    assert not (workspace / "x").exists()


@pytest.mark.parametrize(("max_files", "max_bytes"), [(3, 10**9), (100, 5)])
def test_copy_over_a_limit_leaves_nothing_behind(
    files: LocalFiles,
    workspace: Path,
    monkeypatch: pytest.MonkeyPatch,
    max_files: int,
    max_bytes: int,
) -> None:
    monkeypatch.setattr(local_files, "COPY_MAX_FILES", max_files)
    monkeypatch.setattr(local_files, "COPY_MAX_BYTES", max_bytes)
    for index in range(3):
        (workspace / "src" / f"d{index}").mkdir(parents=True)
        (workspace / "src" / f"d{index}" / "f.txt").write_text("xx")
    (workspace / "src" / "z.txt").write_text("xx")
    message = f"copy exceeds {max_files} files or {max_bytes} bytes"
    with raises(ErrorCode.INVALID_ARGUMENT, message):
        files.copy(files.resolve("src"), files.resolve("out/dst"), recursive=True)
    assert not (workspace / "out" / "dst").exists()
    assert os.listdir(workspace / "out") == []


def test_delete(files: LocalFiles, workspace: Path) -> None:
    (workspace / "d" / "sub").mkdir(parents=True)
    (workspace / "d" / "sub" / "f").write_text("f")
    (workspace / "a.txt").write_text("A")
    outside = outside_dir(workspace)
    os.symlink(outside, workspace / "dirlink")
    assert files.delete(files.resolve("a.txt")) is True
    with raises(ErrorCode.INVALID_ARGUMENT, "path is a directory; set recursive=true: d"):
        files.delete(files.resolve("d"))
    assert files.delete(files.resolve("d"), recursive=True) is True
    assert files.delete(files.resolve("dirlink", follow_final=False), recursive=True) is True
    assert (outside / "secret.txt").exists()
    assert files.delete(files.resolve("missing"), missing_ok=True) is False
    with raises(ErrorCode.NOT_FOUND, "path not found: missing"):
        files.delete(files.resolve("missing"))
    with raises(ErrorCode.POLICY_DENIED, "cannot delete the workspace root"):
        files.delete(files.resolve("."), recursive=True)
    assert os.listdir(workspace) == []


# search -----------------------------------------------------------------------------------------


def test_search(files: LocalFiles, workspace: Path) -> None:
    (workspace / "src").mkdir()
    (workspace / "src" / "a.py").write_text("import os\r\n\ndef main():\n    pass\n")
    (workspace / "b.py").write_text("def main_helper(): ...\n")
    (workspace / ".git").mkdir()
    (workspace / ".git" / "config").write_text("def\n")
    (workspace / "binary.bin").write_bytes(b"def\x00\n")
    outside = outside_dir(workspace)
    (outside / "secret.txt").write_text("def secret\n")
    os.symlink(outside / "secret.txt", workspace / "file_link")
    os.symlink(outside, workspace / "dir_link")
    result = files.search(
        files.resolve("."), lambda line: "def" in line, max_results=10, max_text_chars=512
    )
    assert [(m.path, m.line, m.text) for m in result.matches] == [
        ("b.py", 1, "def main_helper(): ..."),
        ("src/a.py", 3, "def main():"),
    ]
    assert not result.truncated
    single = files.search(
        files.resolve("src/a.py"), lambda line: "os" in line, max_results=10, max_text_chars=512
    )
    assert [(m.path, m.line, m.text) for m in single.matches] == [("src/a.py", 1, "import os")]
    with_git = files.search(
        files.resolve("."),
        lambda line: line == "def",
        max_results=10,
        max_text_chars=512,
        skip_dirs=frozenset(),
    )
    assert [m.path for m in with_git.matches] == [".git/config"]
    with raises(ErrorCode.NOT_FOUND, "path not found: missing"):
        files.search(
            files.resolve("missing"), lambda line: True, max_results=10, max_text_chars=512
        )


def test_search_truncates_exactly(files: LocalFiles, workspace: Path) -> None:
    (workspace / "many.txt").write_text("hit\n" * 10)
    cut = files.search(files.resolve("."), lambda line: True, max_results=3, max_text_chars=512)
    assert ([m.line for m in cut.matches], cut.truncated) == ([1, 2, 3], True)
    exact = files.search(files.resolve("."), lambda line: True, max_results=10, max_text_chars=512)
    assert (len(exact.matches), exact.truncated) == (10, False)


def test_search_skips_huge_lines_and_files(
    files: LocalFiles, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_files, "SEARCH_MAX_LINE_BYTES", 16)
    monkeypatch.setattr(local_files, "SEARCH_MAX_FILE_BYTES", 128)
    (workspace / "lines.txt").write_text("hit short\n" + "hit " * 20 + "\nhit again\n")
    (workspace / "zbig.txt").write_text("hit\n" * 40)
    result = files.search(
        files.resolve("."), lambda line: "hit" in line, max_results=10, max_text_chars=512
    )
    assert [(m.path, m.line) for m in result.matches] == [("lines.txt", 1), ("lines.txt", 3)]


def test_search_keeps_only_the_start_of_a_long_line(files: LocalFiles, workspace: Path) -> None:
    (workspace / "wide.txt").write_text("needle" + "x" * 100_000 + "\n")
    result = files.search(
        files.resolve("."), lambda line: "needle" in line, max_results=5, max_text_chars=10
    )
    assert [m.text for m in result.matches] == ["needlexxxx"]


def test_what_is_created_belongs_to_the_service(files: LocalFiles, workspace: Path) -> None:
    files.write_file(files.resolve("a/b.txt"), b"x")
    files.mkdir(files.resolve("c"))
    uid, gid = os.geteuid(), os.getegid()
    assert set(owners(workspace).values()) == {(uid, gid)}


def test_walk_counts_only_the_files_it_includes(files: LocalFiles, workspace: Path) -> None:
    for name in ("a.log", "b.txt", "c.log", "d.txt", "e.log"):
        (workspace / name).write_text(name)
    logs = files.walk_files(files.resolve("."), max_files=2, include=lambda p: p.endswith(".log"))
    assert ([e.path for e in logs.entries], logs.truncated) == (["a.log", "c.log"], True)
    every = files.walk_files(files.resolve("."), max_files=3, include=lambda p: p.endswith(".log"))
    assert ([e.path for e in every.entries], every.truncated) == (
        ["a.log", "c.log", "e.log"],
        False,
    )


def test_list_stops_at_max_depth(files: LocalFiles, workspace: Path) -> None:
    (workspace / "a" / "b" / "c").mkdir(parents=True)
    (workspace / "a" / "b" / "c" / "deep.txt").write_text("x")
    listing = files.list_dir(files.resolve("."), recursive=True, max_entries=50, max_depth=2)
    assert [entry.path for entry in listing.entries] == ["a", "a/b"]
