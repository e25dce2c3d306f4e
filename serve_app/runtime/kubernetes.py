"""The Kubernetes runtime: a session whose workspace is a runner pod (contract §7.2-7.3).

Everything goes through `pods/exec` of the session's pod and container (`pod_exec.py`), one exec
per operation: a constant POSIX `sh` script (the `scripts` section below) whose inputs are
separate arguments after it, never text pasted into it, using only what BusyBox offers (the
runner images are Alpine based: `sh`, `cat`, `head`, `stat -c`, `find`, `xargs -0`, `mv`, `cp`,
`rm`, `mkdir`, `readlink`, `wc`, `tar`, `timeout`, `mktemp`). Files travel as raw bytes in the
exec frames (stdin with its length, so that v4, which cannot close stdin, works too).

Round trips (execs) per operation: `resolve` 1 (0 for the workspace root); `stat`, `read_file`,
`write_file`, `mkdir`, `move`, `copy`, `delete`, `list_dir`, `walk_files`, `which` 1 each;
`search` 2 (the walk, then the files' content as a tar stream, read until `max_results`);
`temp_dir` 1 to make and 1 to remove; `run` 1. What `tools/git_runner.py` checks before each git
command (`.git`, `commondir`, `config`, `config.worktree`: four stats and two reads) is read ahead
in one exec on the first of them and kept until the call changes anything, so a git tool costs 2
execs (`GIT_METADATA`).

`run`: a constant prologue (`RUN`) exports the session's environment and the caller's `env`
(names checked, each `NAME=value` a separate argument), refuses a `cwd` outside the workdir and
TMP, answers -1 / "cannot start" for a missing command as the local runtime does, then runs the
command under the pod's `timeout -s KILL` (the deadline plus `KILL_GRACE_SECONDS`) as the
backstop of the deadline kept here, at which the stream is closed and 124 answered. HOME and
TMPDIR are `home` and `tmp` beside the workdir on the pod's workspace volume. A call's `network`
cannot narrow the pod's own network policy.

Semantics match `LocalFiles` (results, bounds, error codes and messages): the service makes the
jail's lexical checks (`serve_app.domain.paths`), then the pod resolves symlinks (the same
algorithm as `os.path.realpath`, in `sh`) and the service refuses an answer outside the workspace
or `allowed_paths`. Each operation walks its path again from the workspace root in the pod and
refuses a component that has become a symlink ("path changed while in use"), as the local
runtime's anchored opens do. That walk and the use are separate system calls, though: a process
of the same pod swapping a directory for a symlink in between could redirect the operation — to
the runner container's own files, the only others the pod has.

Not the same as locally (the limits of the pod's tools): a directory that `fs.copy` makes gets
the source's mode less the pod's umask (locally exactly the source's mode); `list_dir` and
`walk_files` read the whole tree under the path (bounded by `WALK_MAX_OUTPUT_BYTES`, beyond which
the answer is truncated) where the local walk stops at its count; `search` skips file names with
a newline and moves the content of the files it reads over the exec stream; a copy killed at its
deadline leaves its hidden temporary sibling behind; the grandchildren of a command killed by the
pod's `timeout` survive where closing the stream does not end the exec (BusyBox `timeout` kills
the command only).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import math
import re
import secrets
import stat as stat_module
import tarfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import IO, Any, TypeVar, cast

from serve_app.domain.errors import (
    ErrorCode,
    ServiceError,
    invalid_argument,
    not_found,
    policy_denied,
)
from serve_app.domain.models import Session
from serve_app.domain.paths import (
    WorkspacePath,
    check_input,
    escapes,
    within_allowed,
    workspace_relative,
)
from serve_app.execution.process import _BoundedOutput
from serve_app.runtime.interface import (
    DEFAULT_OUTPUT_LIMIT,
    SKIPPED_DIRS,
    CommandResult,
    FileContent,
    FileInfo,
    FileKind,
    Listing,
    SearchMatch,
    SearchResult,
)
from serve_app.runtime.local_files import (
    BINARY_SNIFF_BYTES,
    COPY_MAX_BYTES,
    COPY_MAX_FILES,
    NEW_FILE_MODE,
    SEARCH_MAX_FILE_BYTES,
    SEARCH_MAX_LINE_BYTES,
)
from serve_app.runtime.pod_exec import (
    ExecCancel,
    ExecCancelled,
    ExecDeadline,
    ExecError,
    ExecStream,
    PodExec,
)

T = TypeVar("T")
Blocking = Callable[[Callable[[], Any]], Awaitable[Any]]

DEFAULT_OPERATION_SECONDS = 60.0
KILL_GRACE_SECONDS = 2
"""The command's own `timeout` in the pod fires this long after the runtime's deadline: the
runtime answers 124 at its deadline and closes the stream; `timeout` is the backstop that kills
the command even where closing the stream does not."""
WALK_MAX_OUTPUT_BYTES = 16 * 1024 * 1024
SCRIPT_MAX_OUTPUT_BYTES = 4 * 1024 * 1024
STDERR_KEEP_BYTES = 4096
RUN_ENVIRONMENT = {
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_CONFIG_NOSYSTEM": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}
GIT_METADATA = (".git", ".git/commondir", ".git/config", ".git/config.worktree")
"""What `tools/git_runner.py` looks at before every git command (stat, then the config files'
content): one exec answers all of it (`GIT_METADATA_SCRIPT`) and the runtime keeps the answer
until the call changes anything (a write, a move, a command…)."""
GIT_CONFIG_MAX_BYTES = 1024 * 1024 + 1
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# One `stat -c '%f %s %Y %y %n'` record: raw mode (hex), size, mtime seconds, mtime as text (its
# fraction holds the nanoseconds), then the name as given (always "." or "./...").
_STAT_RECORD = re.compile(
    rb"^([0-9a-f]+) ([0-9]+) (-?[0-9]+) \S+ [0-9:]+(?:\.([0-9]+))? \S+ (?=\.)", re.MULTILINE
)

# scripts ----------------------------------------------------------------------------------------
# The constant scripts run in the pod, their inputs in "$1"...: POSIX sh and BusyBox applets only.
# A script reports a refusal with exit code 3 and a tag on stdout.

_FUNCTIONS = r"""
ws_path() {
  _o=$IFS; IFS=:
  set -f
  for _d in $PATH; do
    [ -n "$_d" ] || _d=.
    if [ -f "$_d/$1" ] && [ -x "$_d/$1" ]; then IFS=$_o; set +f; P=$_d/$1; return 0; fi
  done
  IFS=$_o; set +f
  return 1
}
"""

_FILES = (
    r"""
export LC_ALL=C
F='%f %s %Y %y %n'
ws_fail() { printf '%s' "$1"; exit 3; }
ws_root() { cd -P -- "$1" 2>/dev/null || ws_fail noroot; }
ws_walk() {
  D=.
  [ "$1" = . ] && return 0
  _r=$1
  while [ -n "$_r" ]; do
    _c=${_r%%/*}
    case $_r in */*) _r=${_r#*/} ;; *) _r= ;; esac
    D=$D/$_c
    [ -L "$D" ] && return 3
    if [ ! -e "$D" ]; then
      [ "$2" = 1 ] || return 1
      mkdir -- "$D" 2>/dev/null
      [ -L "$D" ] && return 3
      [ -e "$D" ] || return 1
    fi
    [ -d "$D" ] || return 2
  done
  return 0
}
ws_entry() {
  case $1 in
    .) D=.; E=. ;;
    */*) ws_walk "${1%/*}" "$2" || return; E=$D/${1##*/} ;;
    *) D=.; E=./$1 ;;
  esac
  return 0
}
ws_exists() { [ -e "$1" ] || [ -L "$1" ]; }
ws_isdir() { [ -d "$1" ] && [ ! -L "$1" ]; }
"""
    + _FUNCTIONS
)

RESOLVE = (
    _FILES
    + r"""
ws_rp() {
  R=/; _rest=$1; _n=0
  while :; do
    while :; do case $_rest in /*) _rest=${_rest#/} ;; *) break ;; esac; done
    [ -n "$_rest" ] || break
    _c=${_rest%%/*}
    case $_rest in */*) _rest=${_rest#*/} ;; *) _rest= ;; esac
    case $_c in
      .) continue ;;
      ..) R=${R%/*}; [ -n "$R" ] || R=/; continue ;;
    esac
    if [ "$R" = / ]; then _p=/$_c; else _p=$R/$_c; fi
    if [ -L "$_p" ] && [ "$_n" -lt 40 ]; then
      _n=$((_n + 1))
      _t=$(readlink -- "$_p"; echo .); _t=${_t%?.}
      case $_t in /*) R=/ ;; esac
      _rest=$_t${_rest:+/$_rest}
    else
      R=$_p
    fi
  done
}
ws_root "$1"; W=$PWD
if [ "$2" = . ]; then R=$W
elif [ "$3" = 1 ]; then ws_rp "$W/$2"
else
  case $2 in */*) ws_rp "$W/${2%/*}" ;; *) R=$W ;; esac
  R=${R%/}/${2##*/}
fi
printf '%s\0%s\0' "$W" "$R"
"""
)

STAT = (
    _FILES
    + r"""
ws_root "$1"
ws_entry "$2" 0
case $? in 1|2) exit 0 ;; 3) ws_fail changed ;; esac
ws_exists "$E" || exit 0
exec stat -c "$F" -- "$E"
"""
)

READ = (
    _FILES
    + r"""
ws_root "$1"
ws_entry "$2" 0
case $? in 1|2) ws_fail missing ;; 3) ws_fail changed ;; esac
[ -L "$E" ] && ws_fail link
[ -e "$E" ] || ws_fail missing
[ -d "$E" ] && ws_fail isdir
[ -f "$E" ] || ws_fail notreg
[ -r "$E" ] || ws_fail denied
s=$(stat -c %s -- "$E") || ws_fail missing
printf '%s\n' "$s"
exec head -c "$3" -- "$E"
"""
)

WRITE = (
    _FILES
    + r"""
ws_root "$1"
ws_entry "$2" "$4"
case $? in 1) ws_fail noparent ;; 2) ws_fail parentfile ;; 3) ws_fail changed ;; esac
m=$3
if [ -L "$E" ] || { [ -e "$E" ] && [ ! -f "$E" ]; }; then ws_fail notreg; fi
if [ "$m" = - ]; then
  if [ -e "$E" ]; then m=$(stat -c %a -- "$E") || exit 1; else m=$7; fi
fi
T=$D/$6
trap 'rm -f -- "$T"' EXIT
set -C
: > "$T" || exit 1
set +C
head -c "$5" > "$T" || exit 1
w=$(wc -c < "$T")
[ "$((w))" -eq "$5" ] || { echo "only $w of $5 bytes arrived" >&2; exit 1; }
chmod "$m" "$T" || exit 1
mv -f -- "$T" "$E" || exit 1
trap - EXIT
"""
)

MKDIR = (
    _FILES
    + r"""
ws_root "$1"
ws_entry "$2" "$3"
case $? in 1) ws_fail noparent ;; 2) ws_fail parentfile ;; 3) ws_fail changed ;; esac
if ! ws_exists "$E" && mkdir -m "$4" -- "$E"; then printf 1; exit 0; fi
ws_exists "$E" || exit 1
ws_isdir "$E" || ws_fail notdir
[ "$5" = 1 ] || ws_fail exists
printf 0
"""
)

MOVE = (
    _FILES
    + r"""
ws_root "$1"
ws_entry "$2" 0
case $? in 1|2) ws_fail src:missing ;; 3) ws_fail src:changed ;; esac
ws_exists "$E" || ws_fail src:missing
S=$E
[ "$6" = - ] || ws_fail lexical
ws_entry "$3" "$5"
case $? in 1) ws_fail dst:noparent ;; 2) ws_fail dst:parentfile ;; 3) ws_fail dst:changed ;; esac
if ws_exists "$E"; then
  [ "$4" = 1 ] || ws_fail dst:exists
  rm -rf -- "$E" || exit 1
fi
exec mv -- "$S" "$E"
"""
)

COPY = (
    _FILES
    + r"""
ws_root "$1"
ws_entry "$2" 0
case $? in 1|2) ws_fail src:missing ;; 3) ws_fail src:changed ;; esac
ws_exists "$E" || ws_fail src:missing
[ -L "$E" ] && ws_fail src:link
S=$E
if [ -d "$S" ]; then
  [ "$4" = 1 ] || ws_fail src:dir
  k=dir
elif [ -f "$S" ]; then
  [ -r "$S" ] || ws_fail src:denied
  k=file
else
  ws_fail src:notreg
fi
[ "$7" = - ] || ws_fail lexical
ws_entry "$3" "$6"
case $? in 1) ws_fail dst:noparent ;; 2) ws_fail dst:parentfile ;; 3) ws_fail dst:changed ;; esac
if ws_exists "$E"; then [ "$5" = 1 ] || ws_fail dst:exists; fi
if [ $k = dir ]; then
  c=$(find "$S" -type f -print0 | xargs -0 -r stat -c %s -- |
    { n=0; b=0; while read -r s; do n=$((n + 1)); b=$((b + s)); done; echo "$n $b"; })
  [ "${c% *}" -le "$9" ] && [ "${c#* }" -le "${10}" ] || ws_fail limit
fi
T=$D/$8
trap 'rm -rf -- "$T"' EXIT
if [ $k = dir ]; then
  cp -R -P -- "$S" "$T" || exit 1
  find "$T" ! -type d ! -type f -exec rm -f -- {} + || exit 1
else
  cp -- "$S" "$T" || exit 1
fi
if ws_exists "$E"; then rm -rf -- "$E" || exit 1; fi
mv -- "$T" "$E" || exit 1
trap - EXIT
printf '%s' "$k"
"""
)

DELETE = (
    _FILES
    + r"""
ws_root "$1"
ws_entry "$2" 0
r=$?
[ $r = 3 ] && ws_fail changed
if [ $r != 0 ] || ! ws_exists "$E"; then
  [ "$4" = 1 ] && { printf 0; exit 0; }
  ws_fail missing
fi
if ws_isdir "$E"; then
  [ "$3" = 1 ] || ws_fail isdir
  rm -rf -- "$E" || exit 1
else
  rm -f -- "$E" || exit 1
fi
printf 1
"""
)

WALK = (
    _FILES
    + r"""
ws_root "$1"
ws_entry "$2" 0
case $? in 1|2) ws_fail missing ;; 3) ws_fail changed ;; esac
ws_exists "$E" || ws_fail missing
m=$3; md=$4
[ "$md" = - ] && md=
shift 4
if [ "$m" = files ] && [ -f "$E" ] && [ ! -L "$E" ]; then exec stat -c "$F" -- "$E"; fi
if ! ws_isdir "$E"; then
  [ "$m" = files ] && ws_fail notfiledir
  ws_fail notdir
fi
n=$#
for s; do set -- "$@" -o -name "$s"; done
shift "$n"
[ $# -gt 0 ] && shift
if [ $# -gt 0 ]; then
  if [ "$m" = list ]; then
    find "$E" -mindepth 1 ${md:+-maxdepth} ${md:+"$md"} \( -type d \( "$@" \) -print0 -prune \) \
      -o -print0
  else
    find "$E" -mindepth 1 ${md:+-maxdepth} ${md:+"$md"} \( -type d \( "$@" \) -prune \) \
      -o -type f -print0
  fi
elif [ "$m" = list ]; then
  find "$E" -mindepth 1 ${md:+-maxdepth} ${md:+"$md"} -print0
else
  find "$E" -mindepth 1 ${md:+-maxdepth} ${md:+"$md"} -type f -print0
fi | xargs -0 -r stat -c "$F" --
"""
)

CONTENTS = (
    _FILES
    + r"""
ws_root "$1"
head -c "$2" | xargs -0 -r tar -c -f - --no-recursion --
"""
)

GIT_METADATA_SCRIPT = (
    _FILES
    + r"""
ws_root "$1"
max=$2
if ! ws_isdir ./.git; then
  ws_exists ./.git && exec stat -c "$F" -- ./.git
  exit 0
fi
set --
for p in ./.git ./.git/commondir ./.git/config ./.git/config.worktree; do
  ws_exists "$p" && set -- "$@" "$p"
done
s=$(stat -c "$F" -- "$@") || exit 1
printf '%s\0' "$s"
set --
for p in ./.git/config ./.git/config.worktree; do
  if [ -f "$p" ] && [ ! -L "$p" ] && [ -r "$p" ] && [ "$(stat -c %s -- "$p")" -le "$max" ]; then
    set -- "$@" "$p"
  fi
done
[ $# -gt 0 ] || exit 0
exec tar -c -f - --no-recursion -- "$@"
"""
)

WHICH = (
    _FUNCTIONS
    + r"""
case $1 in
  */*) [ -f "$1" ] && [ -x "$1" ] && printf '%s' "$1" ;;
  *) ws_path "$1" && printf '%s' "$P" ;;
esac
exit 0
"""
)

TEMP_DIR = r"""
mkdir -p -- "$1" || exit 1
exec mktemp -d "$1/${2}XXXXXX"
"""

REMOVE_TEMP = r"""
case $2 in "$1"/*) exec rm -rf -- "$2" ;; esac
"""

RUN = (
    _FUNCTIONS
    + r"""
r=$1 t=$2 d=$3 k=$4 n=$5 e=$6
shift 6
while [ "$e" -gt 0 ]; do
  export "$1"
  shift
  e=$((e - 1))
done
[ -d "$t" ] || mkdir -p -- "$t" 2>/dev/null
[ -d "$HOME" ] || mkdir -p -- "$HOME" 2>/dev/null
cd -P -- "$t" 2>/dev/null && t=$PWD
cd -P -- "$r" 2>/dev/null || { printf '\0ws:noent\0'; exit 127; }
r=$PWD
cd -P -- "$d" 2>/dev/null || { printf '\0ws:noent\0'; exit 127; }
case $PWD/ in "$r"/* | "$t"/*) ;; *) printf '\0ws:outside\0'; exit 127 ;; esac
case $1 in
  */*)
    [ -e "$1" ] || { printf '\0ws:noent\0'; exit 127; }
    if [ -d "$1" ] || [ ! -x "$1" ]; then printf '\0ws:denied\0'; exit 126; fi ;;
  *) ws_path "$1" || { printf '\0ws:noent\0'; exit 127; } ;;
esac
ws_run() {
  if ws_path timeout; then exec timeout -s KILL "$k" "$@"; fi
  exec "$@"
}
[ "$n" = - ] && ws_run "$@"
head -c "$n" | ws_run "$@"
"""
)


@dataclass(frozen=True)
class ScriptResult:
    exit_code: int
    stdout: bytes
    stderr: bytes
    truncated: bool = False

    @property
    def tag(self) -> str:
        """The failure a script reported (exit code 3, the tag on stdout)."""
        return self.stdout.decode("utf-8", "replace").strip() if self.exit_code == 3 else ""


def _kind(mode: int) -> FileKind:
    if stat_module.S_ISLNK(mode):
        return "symlink"
    if stat_module.S_ISDIR(mode):
        return "dir"
    if stat_module.S_ISREG(mode):
        return "file"
    return "other"


def _decode_name(raw: bytes) -> str:
    name = raw.decode("utf-8", "surrogateescape")
    if name == ".":
        return "."
    return name[2:] if name.startswith("./") else name


def parse_stat(output: bytes) -> list[tuple[str, FileInfo]]:
    """(path as stat named it, without "./"; its info) for each record of `stat -c STAT_FORMAT`
    output (a name may hold a newline: a record ends where the next one starts)."""
    found = list(_STAT_RECORD.finditer(output))
    records: list[tuple[str, FileInfo]] = []
    for index, match in enumerate(found):
        end = found[index + 1].start() - 1 if index + 1 < len(found) else len(output)
        name = output[match.end() : end]
        if name.endswith(b"\n"):
            name = name[:-1]
        raw_mode = int(match.group(1), 16)
        fraction = (match.group(4) or b"").decode()
        nanoseconds = int((fraction + "000000000")[:9]) if fraction else 0
        path = _decode_name(name)
        records.append(
            (
                path,
                FileInfo(
                    path=path,
                    kind=_kind(raw_mode),
                    size_bytes=int(match.group(2)),
                    mode=stat_module.S_IMODE(raw_mode),
                    # As CPython computes st_mtime from (seconds, nanoseconds).
                    modified_at=int(match.group(3)) + nanoseconds * 1e-9,
                ),
            )
        )
    return records


def _components(path: str) -> list[str]:
    return [] if path == "." else path.split("/")


def _breadth_first_key(path: str) -> tuple[int, list[str]]:
    parts = _components(path)
    return len(parts), parts


def _depth_first_key(path: str) -> list[tuple[int, str]]:
    """Files of a directory (by name) before its subdirectories (each by name, depth first)."""
    parts = _components(path)
    return [(1, part) for part in parts[:-1]] + [(0, parts[-1] if parts else "")]


class _ChunkReader:
    """A file object over an exec's stdout frames (stderr kept aside, bounded)."""

    def __init__(self, stream: ExecStream) -> None:
        self._frames = stream.frames()
        self._buffer = bytearray()
        self._done = False
        self.stderr = bytearray()

    def _fill(self) -> bool:
        for channel, data in self._frames:
            if channel == 1:
                self._buffer += data
                return True
            if len(self.stderr) < STDERR_KEEP_BYTES:
                self.stderr += data[: STDERR_KEEP_BYTES - len(self.stderr)]
        self._done = True
        return False

    def read(self, size: int = -1) -> bytes:
        while (size < 0 or len(self._buffer) < size) and not self._done:
            self._fill()
        if size < 0:
            size = len(self._buffer)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data


class _Prefixed(io.RawIOBase):
    """`head` followed by the rest of `handle`: a file read once, without seeking back."""

    def __init__(self, head: bytes, handle: IO[bytes]) -> None:
        self._head = memoryview(head)
        self._handle = handle

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        if self._head:
            count = min(len(target), len(self._head))
            target[:count] = self._head[:count]
            self._head = self._head[count:]
            return count
        data = self._handle.read(len(target))
        target[: len(data)] = data
        return len(data)


def _lines(handle: IO[bytes]) -> Iterator[tuple[int, str]]:
    """`LocalFiles._lines` over a file read once: text lines (binary files, a NUL in the first
    BINARY_SNIFF_BYTES, yield none), lines longer than SEARCH_MAX_LINE_BYTES skipped but
    counted."""
    head = handle.read(BINARY_SNIFF_BYTES)
    if b"\x00" in head:
        return
    reader = io.BufferedReader(_Prefixed(head, handle), buffer_size=256 * 1024)
    number = 0
    while raw := reader.readline(SEARCH_MAX_LINE_BYTES + 1):
        number += 1
        if len(raw) > SEARCH_MAX_LINE_BYTES:
            while raw and not raw.endswith(b"\n"):
                raw = reader.readline(SEARCH_MAX_LINE_BYTES + 1)
            continue
        yield number, raw.decode("utf-8", "replace").rstrip("\r\n")


class KubernetesRuntime:
    """One session's runner pod, for one tool call. Every operation is an exec in the pod, on the
    executor's thread pool (`blocking`), bounded by the tool's deadline."""

    kind = "kubernetes"

    def __init__(
        self,
        session: Session,
        pod: PodExec,
        *,
        workdir: str,
        blocking: Blocking,
        deadline: float | None = None,
        git_protocols: Sequence[str] = ("https",),
    ) -> None:
        self._session = session
        self._pod = pod
        self._blocking = blocking
        self._deadline = deadline
        self._allowed_paths = list(session.allowed_paths)
        self._root = PurePosixPath(workdir)
        self._git: dict[str, tuple[FileInfo | None, bytes | None]] | None = None
        # HOME and TMP beside the workdir on the pod's workspace volume, as the local layout has
        # them beside the workspace (a read-only root filesystem leaves nothing else writable).
        self._home = self._root.parent / "home"
        self._tmp = self._root.parent / "tmp"
        self._env = {
            **RUN_ENVIRONMENT,
            "HOME": str(self._home),
            "TMPDIR": str(self._tmp),
            "GIT_CEILING_DIRECTORIES": str(self._root.parent),
            "GIT_ALLOW_PROTOCOL": ":".join(git_protocols),
        }

    @property
    def workspace(self) -> PurePosixPath:
        return self._root

    @property
    def visible_devices(self) -> str | None:
        """The pod's GPUs are its own (its spec's resources); nothing is pinned here."""
        return None

    # transport ----------------------------------------------------------------------------------

    def _operation_deadline(self) -> float:
        if self._deadline is not None:
            return self._deadline
        return time.monotonic() + DEFAULT_OPERATION_SECONDS

    def _unavailable(self, exc: ExecError) -> ServiceError:
        if exc.status == 404:
            return ServiceError(
                ErrorCode.UNAVAILABLE,
                f"the session's runner pod is gone ({exc.message})",
                retryable=False,
            )
        return ServiceError(ErrorCode.UNAVAILABLE, exc.message)

    async def _exec(
        self,
        argv: Sequence[str],
        consume: Callable[[ExecStream], T],
        *,
        stdin: bytes | None = None,
        deadline: float | None = None,
    ) -> T:
        """Run `argv` in the pod and hand its stream to `consume` (on a thread)."""
        cancel = ExecCancel()
        until = self._operation_deadline() if deadline is None else deadline

        def work() -> T:
            with self._pod.open(argv, stdin=stdin, deadline=until, cancel=cancel) as stream:
                return consume(stream)

        try:
            result: T = await self._blocking(work)
        except asyncio.CancelledError:
            cancel.abort()
            raise
        except ExecError as exc:
            raise self._unavailable(exc) from None
        except ExecCancelled:
            raise asyncio.CancelledError() from None
        return result

    async def _script(
        self,
        script: str,
        args: Sequence[str],
        *,
        stdin: bytes | None = None,
        max_output: int = SCRIPT_MAX_OUTPUT_BYTES,
    ) -> ScriptResult:
        """One of `scripts` with its arguments; stdout kept up to `max_output` (then the stream is
        closed and the result marked truncated)."""

        def consume(stream: ExecStream) -> ScriptResult:
            out = bytearray()
            err = bytearray()
            for channel, data in stream.frames():
                if channel == 1:
                    out += data
                    if len(out) > max_output:
                        return ScriptResult(-1, bytes(out[:max_output]), bytes(err), True)
                elif len(err) < STDERR_KEEP_BYTES:
                    err += data[: STDERR_KEEP_BYTES - len(err)]
            code = stream.exit_code
            if code is None:
                message = (stream.status or {}).get("message") or "no exit status"
                raise ExecError(f"exec in {self._pod.target} failed: {message}")
            return ScriptResult(code, bytes(out), bytes(err))

        try:
            return await self._exec(["sh", "-c", script, "sh", *args], consume, stdin=stdin)
        except ExecDeadline:
            raise ServiceError(
                ErrorCode.TIMEOUT, "tool deadline exceeded", retryable=True
            ) from None

    def _failed(self, what: str, result: ScriptResult) -> ServiceError:
        detail = result.stderr.decode("utf-8", "replace").strip()
        detail = detail or f"exit code {result.exit_code}"
        return ServiceError(
            ErrorCode.EXECUTION_FAILED, f"{what} failed in the runner pod: {detail}"
        )

    def _root_arg(self) -> str:
        return str(self._root)

    # commands -----------------------------------------------------------------------------------

    async def run(
        self,
        argv: Sequence[str],
        *,
        cwd: PurePosixPath | str | None = None,
        timeout: float,
        stdin: bytes | None = None,
        output_limit: int = DEFAULT_OUTPUT_LIMIT,
        env: Mapping[str, str] | None = None,
        network: bool | None = None,
    ) -> CommandResult:
        """`argv` in the pod through a constant prologue (`RUN`): `cd` to `cwd` (refused
        outside the workdir and TMP), the command looked up on the pod's PATH (-1 and "cannot
        start" when missing, as locally), then run under the pod's `timeout` as a backstop to
        the deadline kept here. `network` does not narrow the pod's own network policy."""
        del network  # the pod's NetworkPolicy decides
        self._changing()
        if not argv:
            raise ValueError("argv must not be empty")
        extra = dict(env or {})
        for name in extra:
            if not _ENV_NAME.match(name):
                raise invalid_argument(f"invalid environment variable name: {name!r}")
        pairs = [f"{name}={value}" for name, value in {**self._env, **extra}.items()]
        directory = str(self._root if cwd is None else cwd)
        seconds = max(math.ceil(timeout), 1) + KILL_GRACE_SECONDS
        command = [
            "sh",
            "-c",
            RUN,
            "sh",
            str(self._root),
            str(self._tmp),
            directory,
            str(seconds),
            "-" if stdin is None else str(len(stdin)),
            str(len(pairs)),
            *pairs,
            *argv,
        ]
        deadline = time.monotonic() + max(timeout, 0.0)
        sink = _BoundedOutput(output_limit)
        head = bytearray()

        def consume(stream: ExecStream) -> int | None:
            try:
                for channel, data in stream.frames():
                    if channel == 1 and len(head) < 64:
                        head.extend(data[: 64 - len(head)])
                    sink.feed("stdout" if channel == 1 else "stderr", data)
            except ExecDeadline:
                return None
            code = stream.exit_code
            if code is None:
                message = (stream.status or {}).get("message") or "no exit status"
                raise ExecError(f"exec in {self._pod.target} failed: {message}")
            return code

        try:
            code = await self._exec(command, consume, stdin=stdin, deadline=deadline)
        except ExecDeadline:
            code = None
        if code is None:
            output, logs = sink.finish()
            return CommandResult(
                exit_code=124, output=output, truncated=sink.truncated, timed_out=True, logs=logs
            )
        if code in (126, 127) and bytes(head).startswith(b"\0ws:"):
            tag = bytes(head).strip(b"\0").decode()
            if tag == "ws:outside":
                raise invalid_argument("working directory is outside the workspace")
            reason = "Permission denied" if tag == "ws:denied" else "No such file or directory"
            return CommandResult(
                exit_code=-1,
                output=f"cannot start {argv[0]}: {reason}",
                truncated=False,
                timed_out=False,
            )
        output, logs = sink.finish()
        return CommandResult(
            exit_code=code, output=output, truncated=sink.truncated, timed_out=False, logs=logs
        )

    async def which(self, command: str) -> str | None:
        result = await self._script(WHICH, [command])
        found = result.stdout.decode("utf-8", "surrogateescape")
        return found if result.exit_code == 0 and found else None

    @contextlib.asynccontextmanager
    async def temp_dir(self, prefix: str) -> AsyncIterator[PurePosixPath]:
        if "/" in prefix or "\0" in prefix:
            raise ValueError("a temporary directory's prefix is a plain name")
        self._changing()
        result = await self._script(TEMP_DIR, [str(self._tmp), prefix])
        path = result.stdout.decode("utf-8", "surrogateescape").strip()
        if result.exit_code != 0 or not path.startswith(f"{self._tmp}/"):
            raise self._failed("making a temporary directory", result)
        try:
            yield PurePosixPath(path)
        finally:
            with contextlib.suppress(ServiceError):
                await self._script(REMOVE_TEMP, [str(self._tmp), path])

    # the jail -----------------------------------------------------------------------------------

    async def resolve(self, user_path: str, *, follow_final: bool = True) -> WorkspacePath:
        """`domain.paths.resolve` with the symlinks resolved in the pod."""
        check_input(user_path)
        relative = workspace_relative(user_path)
        if escapes(relative):
            raise policy_denied("path escapes workspace")
        if not within_allowed(relative, self._allowed_paths):
            raise policy_denied("path outside allowed_paths")
        if relative == ".":
            # The workdir itself (a directory the runner pod's init container made): no exec.
            return WorkspacePath(real=self._root, relative=".", requested=".")
        result = await self._script(
            RESOLVE, [self._root_arg(), relative, "1" if follow_final else "0"]
        )
        if result.tag == "noroot":
            raise ServiceError(ErrorCode.UNAVAILABLE, f"the runner pod has no workdir {self._root}")
        fields = result.stdout.split(b"\0")
        if result.exit_code != 0 or len(fields) < 3:
            raise self._failed("resolving a path", result)
        root = PurePosixPath(fields[0].decode("utf-8", "surrogateescape"))
        real = PurePosixPath(fields[1].decode("utf-8", "surrogateescape"))
        try:
            real_relative = real.relative_to(root).as_posix()
        except ValueError:
            raise policy_denied("path escapes workspace through a symlink") from None
        real_relative = real_relative or "."
        if not within_allowed(real_relative, self._allowed_paths):
            raise policy_denied("path resolves outside allowed_paths through a symlink")
        return WorkspacePath(real=real, relative=real_relative, requested=relative)

    # files --------------------------------------------------------------------------------------

    @staticmethod
    def _changed(requested: str) -> ServiceError:
        return policy_denied(
            f"path changed while in use (a symlink replaced a directory): {requested}"
        )

    def _common(self, tag: str, path: WorkspacePath) -> ServiceError | None:
        """Failures every operation words the same."""
        if tag == "changed":
            return self._changed(path.requested)
        if tag == "noroot":
            return ServiceError(
                ErrorCode.UNAVAILABLE, f"the runner pod has no workdir {self._root}"
            )
        if tag == "noparent":
            return not_found(f"parent directory does not exist: {path.requested}")
        if tag == "parentfile":
            return invalid_argument(f"parent is not a directory: {path.requested}")
        return None

    def _changing(self) -> None:
        """Forget what was read ahead: the call is about to change the workspace."""
        self._git = None

    async def _git_metadata(self, relative: str) -> tuple[FileInfo | None, bytes | None] | None:
        """The stat and (small config files) content of a `GIT_METADATA` entry, read ahead for
        all of them in one exec; None when not known that way (then the caller asks the pod)."""
        if relative not in GIT_METADATA:
            return None
        if self._git is None:
            self._git = await self._read_git_metadata()
        return self._git.get(relative)

    async def _read_git_metadata(self) -> dict[str, tuple[FileInfo | None, bytes | None]]:
        result = await self._script(
            GIT_METADATA_SCRIPT,
            [self._root_arg(), str(GIT_CONFIG_MAX_BYTES)],
            max_output=2 * GIT_CONFIG_MAX_BYTES + 64 * 1024,
        )
        if result.exit_code != 0 or result.truncated:
            return {}
        text, separator, archive = result.stdout.partition(b"\0")
        infos = dict(parse_stat(text))
        if not separator:  # .git is not a directory: only its own entry is known
            return {".git": (infos.get(".git"), None)}
        contents: dict[str, bytes] = {}
        if archive:
            try:
                with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
                    for member in tar:
                        handle = tar.extractfile(member) if member.isreg() else None
                        if handle is not None:
                            contents[member.name.removeprefix("./")] = handle.read()
            except tarfile.TarError:
                return {}
        return {name: (infos.get(name), contents.get(name)) for name in GIT_METADATA}

    async def stat(self, path: WorkspacePath) -> FileInfo | None:
        known = await self._git_metadata(path.relative)
        if known is not None:
            info = known[0]
            return None if info is None else replace(info, path=path.relative)
        result = await self._script(STAT, [self._root_arg(), path.relative])
        if result.exit_code == 3:
            raise self._common(result.tag, path) or self._failed("stat", result)
        if result.exit_code != 0:
            raise self._failed("stat", result)
        records = parse_stat(result.stdout)
        if not records:
            return None
        info = records[0][1]
        return FileInfo(
            path=path.relative,
            kind=info.kind,
            size_bytes=info.size_bytes,
            mode=info.mode,
            modified_at=info.modified_at,
        )

    async def read_file(self, path: WorkspacePath, *, max_bytes: int) -> FileContent:
        known = await self._git_metadata(path.relative)
        if known is not None and known[0] is not None and known[0].kind == "file" and known[1]:
            return FileContent(data=known[1][:max_bytes], size_bytes=len(known[1]))
        result = await self._script(
            READ,
            [self._root_arg(), path.relative, str(max_bytes)],
            max_output=max_bytes + 32,
        )
        if result.exit_code == 3:
            tag = result.tag
            if tag == "missing":
                raise not_found(f"file not found: {path.requested}")
            if tag == "isdir":
                raise invalid_argument(f"path is a directory: {path.requested}")
            if tag == "notreg":
                raise invalid_argument(f"not a regular file: {path.requested}")
            if tag == "link":
                raise policy_denied(
                    f"cannot open {path.requested}: Too many levels of symbolic links"
                )
            if tag == "denied":
                raise policy_denied(f"cannot open {path.requested}: Permission denied")
            raise self._common(tag, path) or self._failed("reading a file", result)
        size, newline, data = result.stdout.partition(b"\n")
        if result.exit_code != 0 or not newline or not size.isdigit():
            raise self._failed("reading a file", result)
        return FileContent(data=data[:max_bytes], size_bytes=int(size))

    async def write_file(
        self,
        path: WorkspacePath,
        data: bytes,
        *,
        create_parents: bool = True,
        mode: int | None = None,
    ) -> None:
        self._changing()
        if path.is_root:
            raise invalid_argument("path is the workspace root")
        name = path.relative.rsplit("/", 1)[-1]
        temporary = f".{name[:200]}.{secrets.token_hex(4)}.tmp"
        result = await self._script(
            WRITE,
            [
                self._root_arg(),
                path.relative,
                "-" if mode is None else f"{mode:o}",
                "1" if create_parents else "0",
                str(len(data)),
                temporary,
                f"{NEW_FILE_MODE:o}",
            ],
            stdin=data,
        )
        if result.exit_code == 3:
            tag = result.tag
            if tag == "notreg":
                raise invalid_argument(f"path exists and is not a regular file: {path.requested}")
            raise self._common(tag, path) or self._failed("writing a file", result)
        if result.exit_code != 0:
            raise self._failed("writing a file", result)

    async def _walk(
        self,
        path: WorkspacePath,
        mode: str,
        depth: int | None,
        skip_dirs: frozenset[str],
    ) -> tuple[list[tuple[str, FileInfo]], bool]:
        result = await self._script(
            WALK,
            [
                self._root_arg(),
                path.relative,
                mode,
                "-" if depth is None else str(depth),
                *sorted(skip_dirs),
            ],
            max_output=WALK_MAX_OUTPUT_BYTES,
        )
        if result.exit_code == 3:
            tag = result.tag
            if tag == "missing":
                raise not_found(f"path not found: {path.requested}")
            if tag == "notdir":
                raise invalid_argument(f"path is not a directory: {path.requested}")
            if tag == "notfiledir":
                raise invalid_argument(f"not a file or directory: {path.requested}")
            raise self._common(tag, path) or self._failed("listing", result)
        if result.exit_code not in (0, 123) and not result.truncated:
            # xargs answers 123 when a stat failed: an entry removed while listed is left out.
            raise self._failed("listing", result)
        return parse_stat(result.stdout), result.truncated

    async def list_dir(
        self,
        path: WorkspacePath,
        *,
        recursive: bool = False,
        max_entries: int,
        skip_dirs: frozenset[str] = SKIPPED_DIRS,
        max_depth: int | None = None,
    ) -> Listing:
        depth = (None if max_depth is None else max(max_depth, 1)) if recursive else 1
        records, cut = await self._walk(path, "list", depth, skip_dirs)
        entries = sorted((info for _, info in records), key=lambda i: _breadth_first_key(i.path))
        truncated = cut or len(entries) > max_entries
        return Listing(entries=entries[:max_entries], truncated=truncated)

    async def walk_files(
        self,
        path: WorkspacePath,
        *,
        recursive: bool = True,
        max_files: int,
        skip_dirs: frozenset[str] = SKIPPED_DIRS,
        include: Callable[[str], bool] | None = None,
    ) -> Listing:
        files = await self._files(path, recursive, skip_dirs)
        entries: list[FileInfo] = []
        for info in files[0]:
            if include is not None and not include(info.path):
                continue
            if len(entries) >= max_files:
                return Listing(entries=entries, truncated=True)
            entries.append(info)
        return Listing(entries=entries, truncated=files[1])

    async def _files(
        self, path: WorkspacePath, recursive: bool, skip_dirs: frozenset[str]
    ) -> tuple[list[FileInfo], bool]:
        """The regular files `walk_files` visits, in its order."""
        records, cut = await self._walk(path, "files", None if recursive else 1, skip_dirs)
        if len(records) == 1 and records[0][0] == path.relative and records[0][1].kind == "file":
            return [records[0][1]], cut
        files = [info for _, info in records if info.kind == "file"]
        files.sort(key=lambda info: _depth_first_key(info.path))
        return files, cut

    async def mkdir(
        self, path: WorkspacePath, *, parents: bool = True, mode: int = 0o755, exist_ok: bool = True
    ) -> bool:
        self._changing()
        result = await self._script(
            MKDIR,
            [
                self._root_arg(),
                path.relative,
                "1" if parents else "0",
                f"{mode:o}",
                "1" if exist_ok else "0",
            ],
        )
        if result.exit_code == 3:
            tag = result.tag
            if tag == "notdir":
                raise invalid_argument(f"path exists and is not a directory: {path.requested}")
            if tag == "exists":
                raise invalid_argument(f"directory already exists: {path.requested}")
            raise self._common(tag, path) or self._failed("mkdir", result)
        if result.exit_code != 0:
            raise self._failed("mkdir", result)
        return result.stdout.strip() == b"1"

    @staticmethod
    def _lexical(source: WorkspacePath, destination: WorkspacePath) -> ServiceError | None:
        """`LocalFiles._destination`'s checks that need no file system."""

        def inside(inner: str, outer: str) -> bool:
            a, b = PurePosixPath(inner), PurePosixPath(outer)
            return a == b or b in a.parents

        if destination.is_root:
            return invalid_argument("destination is the workspace root")
        if inside(destination.relative, source.relative):
            return invalid_argument("destination is inside the source")
        if inside(source.relative, destination.relative):
            return invalid_argument("source is inside the destination")
        return None

    def _two_path_failure(
        self, what: str, result: ScriptResult, source: WorkspacePath, destination: WorkspacePath
    ) -> ServiceError:
        tag = result.tag
        side, _, rest = tag.partition(":")
        if side in ("src", "dst") and rest:
            path = source if side == "src" else destination
            if rest == "missing":
                return not_found(f"source not found: {source.requested}")
            if rest == "exists":
                return invalid_argument(f"destination exists: {destination.requested}")
            common = self._common(rest, path)
            if common is not None:
                return common
        return self._failed(what, result)

    async def move(
        self,
        source: WorkspacePath,
        destination: WorkspacePath,
        *,
        overwrite: bool = False,
        create_parents: bool = True,
    ) -> None:
        self._changing()
        if source.is_root:
            raise policy_denied("cannot move the workspace root")
        lexical = self._lexical(source, destination)
        result = await self._script(
            MOVE,
            [
                self._root_arg(),
                source.relative,
                destination.relative,
                "1" if overwrite else "0",
                "1" if create_parents else "0",
                "-" if lexical is None else "x",
            ],
        )
        if result.tag == "lexical" and lexical is not None:
            raise lexical
        if result.exit_code == 3:
            raise self._two_path_failure("move", result, source, destination)
        if result.exit_code != 0:
            raise self._failed("move", result)

    async def copy(
        self,
        source: WorkspacePath,
        destination: WorkspacePath,
        *,
        recursive: bool = False,
        overwrite: bool = False,
        create_parents: bool = True,
    ) -> FileKind:
        self._changing()
        lexical = self._lexical(source, destination)
        name = destination.relative.rsplit("/", 1)[-1]
        result = await self._script(
            COPY,
            [
                self._root_arg(),
                source.relative,
                destination.relative,
                "1" if recursive else "0",
                "1" if overwrite else "0",
                "1" if create_parents else "0",
                "-" if lexical is None else "x",
                f".{name[:200]}.{secrets.token_hex(4)}.tmp",
                str(COPY_MAX_FILES),
                str(COPY_MAX_BYTES),
            ],
        )
        if result.exit_code == 3:
            tag = result.tag
            if tag == "lexical" and lexical is not None:
                raise lexical
            if tag == "src:link":
                raise invalid_argument(f"fs.copy does not copy symlinks: {source.requested}")
            if tag == "src:dir":
                raise invalid_argument(
                    f"source is a directory; set recursive=true: {source.requested}"
                )
            if tag == "src:notreg":
                raise invalid_argument(f"not a regular file: {source.requested}")
            if tag == "src:denied":
                raise policy_denied(f"cannot open {source.requested}: Permission denied")
            if tag == "limit":
                raise invalid_argument(
                    f"copy exceeds {COPY_MAX_FILES} files or {COPY_MAX_BYTES} bytes"
                )
            raise self._two_path_failure("copy", result, source, destination)
        kind = result.stdout.strip()
        if result.exit_code != 0 or kind not in (b"file", b"dir"):
            raise self._failed("copy", result)
        return "dir" if kind == b"dir" else "file"

    async def delete(
        self, path: WorkspacePath, *, recursive: bool = False, missing_ok: bool = False
    ) -> bool:
        self._changing()
        if path.is_root:
            raise policy_denied("cannot delete the workspace root")
        result = await self._script(
            DELETE,
            [
                self._root_arg(),
                path.relative,
                "1" if recursive else "0",
                "1" if missing_ok else "0",
            ],
        )
        if result.exit_code == 3:
            tag = result.tag
            if tag == "missing":
                raise not_found(f"path not found: {path.requested}")
            if tag == "isdir":
                raise invalid_argument(f"path is a directory; set recursive=true: {path.requested}")
            raise self._common(tag, path) or self._failed("delete", result)
        if result.exit_code != 0:
            raise self._failed("delete", result)
        return result.stdout.strip() == b"1"

    async def search(
        self,
        path: WorkspacePath,
        matches: Callable[[str], bool],
        *,
        max_results: int,
        max_text_chars: int,
        skip_dirs: frozenset[str] = SKIPPED_DIRS,
    ) -> SearchResult:
        """The files in `walk_files` order (one exec), then their content as one tar stream
        (a second), read line by line as `LocalFiles.search` reads them, the stream closed at
        `max_results`."""
        files, _ = await self._files(path, True, skip_dirs)
        wanted = [
            info.path
            for info in files
            if info.size_bytes <= SEARCH_MAX_FILE_BYTES and "\n" not in info.path
        ]
        if not wanted:
            return SearchResult(matches=[], truncated=False)
        names = b"".join(b"./" + name.encode("utf-8", "surrogateescape") + b"\0" for name in wanted)
        expected = set(wanted)

        def consume(stream: ExecStream) -> SearchResult:
            found: list[SearchMatch] = []
            reader = _ChunkReader(stream)
            with tarfile.open(
                fileobj=cast(IO[bytes], reader), mode="r|", ignore_zeros=True
            ) as archive:
                for member in archive:
                    relative = member.name[2:] if member.name.startswith("./") else member.name
                    if not member.isreg() or relative not in expected:
                        continue
                    handle = archive.extractfile(member)
                    if handle is None:
                        continue
                    for number, line in _lines(handle):
                        if matches(line):
                            if len(found) >= max_results:
                                return SearchResult(matches=found, truncated=True)
                            found.append(
                                SearchMatch(path=relative, line=number, text=line[:max_text_chars])
                            )
            return SearchResult(matches=found, truncated=False)

        try:
            return await self._exec(
                ["sh", "-c", CONTENTS, "sh", self._root_arg(), str(len(names))],
                consume,
                stdin=names,
            )
        except ExecDeadline:
            raise ServiceError(
                ErrorCode.TIMEOUT, "tool deadline exceeded", retryable=True
            ) from None
        except tarfile.TarError as exc:
            raise ServiceError(
                ErrorCode.EXECUTION_FAILED, f"search failed in the runner pod: {exc}"
            ) from None
