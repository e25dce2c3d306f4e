"""What `git status` and `git diff --name-status` print, parsed into changed-file records: the
porcelain v1 and name-status formats, NUL-separated (`-z`, as the tools run git) or as text a
caller pasted.

Plain functions over text; running git is `git_runner`'s job.
"""

from __future__ import annotations

import codecs
from typing import Literal, TypedDict

_STATUS_NAMES = {
    "A": "added",
    "D": "deleted",
    "R": "renamed",
    "C": "copied",
    "U": "conflict",
    "M": "modified",
    "T": "type_changed",
}


class Change(TypedDict):
    """One changed path: `status` in words (added, modified, renamed, untracked, …), git's
    index and worktree status letters, and where a rename or copy came from."""

    path: str
    status: str
    index_status: str
    worktree_status: str
    staged: bool
    unstaged: bool
    untracked: bool
    deleted: bool
    renamed_from: str


Mode = Literal["working_tree", "base_ref_diff"]


def _status_name(index: str, worktree: str) -> str:
    if index == "?" and worktree == "?":
        return "untracked"
    for code in (index, worktree):
        if code in _STATUS_NAMES:
            return _STATUS_NAMES[code]
    return "changed"


def _status_entry(index: str, worktree: str, path: str, renamed_from: str) -> Change:
    return Change(
        path=path,
        status=_status_name(index, worktree),
        index_status=index,
        worktree_status=worktree,
        staged=index not in (" ", "?"),
        unstaged=worktree not in (" ", "?"),
        untracked=index == "?" and worktree == "?",
        deleted="D" in (index, worktree),
        renamed_from=renamed_from,
    )


def _diff_entry(code: str, path: str, renamed_from: str) -> Change:
    letter = code[:1]
    return Change(
        path=path,
        status=_status_name(letter, " "),
        index_status=letter,
        worktree_status="",
        staged=False,
        unstaged=False,
        untracked=False,
        deleted=letter == "D",
        renamed_from=renamed_from,
    )


def parse_status_z(output: str) -> list[Change]:
    """`git status --porcelain=v1 -z`: `XY path\\0`, renames followed by `old\\0`."""
    records = output.split("\0")
    entries: list[Change] = []
    index = 0
    while index < len(records):
        record = records[index]
        index += 1
        if len(record) < 4:
            continue
        x, y, path = record[0], record[1], record[3:]
        renamed_from = ""
        if "R" in (x, y) or "C" in (x, y):
            renamed_from = records[index] if index < len(records) else ""
            index += 1
        entries.append(_status_entry(x, y, path, renamed_from))
    return entries


def parse_name_status_z(output: str) -> list[Change]:
    """`git diff --name-status -z`: `CODE\\0path\\0`, renames/copies `CODE\\0old\\0new\\0`."""
    records = output.split("\0")
    entries: list[Change] = []
    index = 0
    while index + 1 < len(records):
        code = records[index]
        if not code:
            index += 1
            continue
        if code[:1] in ("R", "C") and index + 2 < len(records):
            entries.append(_diff_entry(code, records[index + 2], records[index + 1]))
            index += 3
        else:
            entries.append(_diff_entry(code, records[index + 1], ""))
            index += 2
    return entries


def _unquote(path: str) -> str:
    """git's C-style quoting (`"sp\\303\\251cial.txt"`: octal escapes of UTF-8 bytes)."""
    path = path.strip()
    if len(path) >= 2 and path[0] == path[-1] == '"':
        raw: bytes = codecs.escape_decode(path[1:-1].encode("utf-8"))[0]
        return raw.decode("utf-8", "replace")
    return path


def parse_status_text(output: str) -> tuple[Mode, list[Change]]:
    """Provided text: porcelain status lines (`XY path`, `XY old -> new`) or name-status lines
    (`M\\tpath`, `R100\\told\\tnew`)."""
    lines = [line.rstrip("\r") for line in output.splitlines() if line.strip()]
    porcelain = any(len(line) >= 3 and line[2] == " " and "\t" not in line for line in lines)
    entries: list[Change] = []
    for line in lines:
        if porcelain:
            if len(line) < 4:
                continue
            path, renamed_from = line[3:], ""
            if " -> " in path:
                renamed_from, path = path.split(" -> ", 1)
            entries.append(_status_entry(line[0], line[1], _unquote(path), _unquote(renamed_from)))
        else:
            fields = line.split("\t")
            if len(fields) < 2:
                continue
            if fields[0][:1] in ("R", "C") and len(fields) >= 3:
                entries.append(_diff_entry(fields[0], _unquote(fields[2]), _unquote(fields[1])))
            else:
                entries.append(_diff_entry(fields[0], _unquote(fields[1]), ""))
    return ("working_tree" if porcelain else "base_ref_diff"), entries
