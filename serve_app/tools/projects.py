"""What a workspace project is (contract §4.3 detection order) and what its toolchains print:
compiler/linter diagnostics, failing tests, stack traces and coverage totals, parsed from output.

Detection gathers a few facts through the session's `WorkspaceRuntime` (the marker files at the
workspace root, `*.c` sources near it, package.json) and classifies them with pure functions;
everything else here is plain functions over text. Nothing runs a command.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from serve_app.domain.errors import ErrorCode, ServiceError
from serve_app.domain.paths import WorkspacePath
from serve_app.runtime.interface import WorkspaceRuntime

# detection --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Project:
    """A detected project: `name` is the language family, `flavor` the build system."""

    name: str
    flavor: str

    @property
    def known(self) -> bool:
        return self.name != "unknown"


UNKNOWN = Project("unknown", "")
C_SEARCH_DEPTH = 3
# Directories that never hold the project's own C sources (dependencies, outputs, tool state).
SKIPPED_DIRS = frozenset(
    {".git", "node_modules", "vendor", ".venv", "target", ".workspace-build", ".workspace-dist"}
)
# The files at the workspace root that detection and the toolchain facts look at.
MARKERS = frozenset(
    {
        "go.mod",
        "Cargo.toml",
        "package.json",
        "tsconfig.json",
        "pyproject.toml",
        "pytest.ini",
        "requirements.txt",
        "mvnw",
        "pom.xml",
        "gradlew",
        "build.gradle",
        "build.gradle.kts",
        "CMakeLists.txt",
        "Dockerfile",
        "Containerfile",
    }
)
ROOT_LISTING_MAX = 10_000
C_LISTING_MAX = 20_000
MANIFEST_MAX_BYTES = 4 * 1024 * 1024
_REFUSED = (ErrorCode.POLICY_DENIED, ErrorCode.INVALID_ARGUMENT)


def classify(markers: frozenset[str], has_c_sources: bool = False) -> Project:
    """The first marker that matches, in the contract's order (go.mod before Cargo.toml, …);
    `markers` are the names of the regular files at the workspace root."""

    def has(*names: str) -> bool:
        return any(name in markers for name in names)

    if has("go.mod"):
        return Project("go", "go")
    if has("Cargo.toml"):
        return Project("rust", "cargo")
    if has("package.json"):
        return Project("node", "typescript" if has("tsconfig.json") else "npm")
    if has("pyproject.toml", "pytest.ini", "requirements.txt"):
        return Project("python", "pytest")
    if has("mvnw", "pom.xml"):
        return Project("java", "maven")
    if has("gradlew", "build.gradle", "build.gradle.kts"):
        return Project("java", "gradle")
    if has("CMakeLists.txt") or has_c_sources:
        return Project("c", "cc")
    return UNKNOWN


def root_path(runtime: WorkspaceRuntime) -> WorkspacePath:
    """The workspace directory itself. Project detection looks at the project's own marker files
    whatever the session's allowed_paths, as it always has; an entry directly in the workspace
    has no directory component a symlink could send elsewhere, and the runtime never follows a
    final symlink."""
    return WorkspacePath(real=runtime.workspace, relative=".", requested=".")


def _root_entry(runtime: WorkspaceRuntime, name: str) -> WorkspacePath:
    return WorkspacePath(real=runtime.workspace / name, relative=name, requested=name)


async def regular_file(runtime: WorkspaceRuntime, name: str) -> WorkspacePath | None:
    """`name` through the jail when it is a regular file (through symlinks that stay inside the
    workspace and allowed_paths); None when it is absent, something else, or refused."""
    try:
        path = await runtime.resolve(name)
    except ServiceError as error:
        if error.code in _REFUSED:
            return None
        raise
    info = await runtime.stat(path)
    return path if info is not None and info.kind == "file" else None


async def root_file(runtime: WorkspaceRuntime, name: str) -> WorkspacePath | None:
    """A regular file directly in the workspace (a symlink counts when the jail admits its
    target), or None."""
    entry = _root_entry(runtime, name)
    info = await runtime.stat(entry)
    if info is None:
        return None
    if info.kind == "file":
        return entry
    if info.kind == "symlink":
        return await regular_file(runtime, name)
    return None


async def markers(runtime: WorkspaceRuntime) -> frozenset[str]:
    """The marker files (`MARKERS`) present at the workspace root as regular files."""
    listing = await runtime.list_dir(root_path(runtime), max_entries=ROOT_LISTING_MAX)
    found: set[str] = set()
    for entry in listing.entries:
        if entry.path not in MARKERS:
            continue
        if entry.kind == "file" or (
            entry.kind == "symlink" and await regular_file(runtime, entry.path) is not None
        ):
            found.add(entry.path)
    if listing.truncated:
        for name in sorted(MARKERS - {entry.path for entry in listing.entries}):
            if await root_file(runtime, name) is not None:
                found.add(name)
    return frozenset(found)


def is_c_test(relative: str) -> bool:
    name = relative.rsplit("/", 1)[-1]
    return name.startswith("test_") or name.endswith("test.c")


async def c_sources(runtime: WorkspaceRuntime) -> list[str]:
    """`*.c` files within three levels of the workspace root, workspace-relative and sorted;
    symlinks and dependency/output directories are skipped."""
    listing = await runtime.list_dir(
        root_path(runtime),
        recursive=True,
        max_entries=C_LISTING_MAX,
        skip_dirs=SKIPPED_DIRS,
        max_depth=C_SEARCH_DEPTH,
    )
    return sorted(
        entry.path
        for entry in listing.entries
        if entry.kind == "file" and entry.path.endswith(".c")
    )


async def detect(runtime: WorkspaceRuntime) -> Project:
    """The workspace's project (see `classify`); `*.c` sources are looked for only when no
    marker file matched."""
    found = await markers(runtime)
    project = classify(found)
    if project.known:
        return project
    return classify(found, bool(await c_sources(runtime)))


def parse_package_json(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


async def package_json(runtime: WorkspaceRuntime) -> dict[str, Any]:
    """The workspace's package.json as an object ({} when absent, too large or not JSON)."""
    path = await root_file(runtime, "package.json")
    if path is None:
        return {}
    content = await runtime.read_file(path, max_bytes=MANIFEST_MAX_BYTES)
    if content.truncated:
        return {}
    return parse_package_json(content.data.decode("utf-8", "replace"))


def node_test_framework(manifest: dict[str, Any]) -> str:
    dependencies: dict[str, Any] = {}
    for key in ("dependencies", "devDependencies"):
        section = manifest.get(key)
        if isinstance(section, dict):
            dependencies.update(section)
    for framework in ("vitest", "jest", "mocha", "ava"):
        if framework in dependencies:
            return framework
    scripts = manifest.get("scripts")
    test_script = scripts.get("test", "") if isinstance(scripts, dict) else ""
    return "node:test" if "node --test" in str(test_script) else "npm test"


@dataclass(frozen=True)
class Toolchain:
    language: str
    build_system: str
    test_framework: str
    command: str  # the executable the tools run first; its presence means the toolchain is there


def toolchain_of(
    project: Project, markers: frozenset[str], manifest: dict[str, Any] | None = None
) -> Toolchain:
    """The toolchain facts of a detected project, from its marker files and (for Node) its
    package.json."""
    match project.name:
        case "go":
            return Toolchain("go", "go", "go test", "go")
        case "rust":
            return Toolchain("rust", "cargo", "cargo test", "cargo")
        case "node":
            language = "typescript" if project.flavor == "typescript" else "javascript"
            return Toolchain(language, "npm", node_test_framework(manifest or {}), "npm")
        case "python":
            return Toolchain("python", "pip", "pytest", "python3")
        case "java":
            command = "mvn" if project.flavor == "maven" else "gradle"
            return Toolchain("java", project.flavor, "junit", command)
        case "c":
            build = "cmake" if "CMakeLists.txt" in markers else "cc"
            return Toolchain("c", build, "test binary", "cc")
    return Toolchain("unknown", "unknown", "unknown", "")


async def toolchain(
    runtime: WorkspaceRuntime, project: Project, found: frozenset[str] | None = None
) -> Toolchain:
    """`toolchain_of` with the facts gathered from the workspace (`found`: the markers, when
    the caller has them already)."""
    found = await markers(runtime) if found is None else found
    manifest = await package_json(runtime) if project.name == "node" else None
    return toolchain_of(project, found, manifest)


def containerizable(markers: frozenset[str]) -> bool:
    return bool(markers & {"Dockerfile", "Containerfile"})


# diagnostics ------------------------------------------------------------------------------------

# Patterns run over untrusted output line by line, so each is linear in the line's length: the
# path is one possessive token (checked for a file extension afterwards), never nested repeats.
_PATH = r"(?:[A-Za-z]:)?[^\s:()'\"]++"
_EXTENSION = re.compile(r"\w\.[A-Za-z0-9]+$")
MAX_LINE_CHARS = 4096
# gcc/clang, go build/vet, pyflakes/ruff/flake8, eslint (unix): path:line[:col]: [severity:] message
_COMPILER = re.compile(
    rf"^\s*(?:vet: |\*\*\*\s+)?(?P<path>{_PATH}):(?P<line>\d+):(?:(?P<col>\d+):)?\s+"
    r"(?:(?P<sev>fatal error|error|warning|note)\s*:\s*)?(?P<msg>\S.*)$"
)
# tsc: path(line,col): error TS1234: message   or   path:line:col - error TS1234: message
_TSC = re.compile(
    rf"^(?P<path>{_PATH})(?:\((?P<line>\d+),(?P<col>\d+)\)|:(?P<line2>\d+):(?P<col2>\d+) -)"
    r":? (?P<sev>error|warning) (?P<code>TS\d+): (?P<msg>.+)$"
)
# rustc: "error[E0425]: message" then "  --> path:line:col"
_RUST_HEAD = re.compile(r"^(?P<sev>error|warning)(?:\[(?P<code>[A-Za-z0-9]+)\])?: (?P<msg>.+)$")
_RUST_AT = re.compile(r"^\s*--> (?P<path>[^\s:]+):(?P<line>\d+):(?P<col>\d+)")
# Python compile errors: File "x.py", line 3 … then SyntaxError: message
_PY_FILE = re.compile(r'^\s*(?:\*\*\*\s+)?File "(?P<path>[^"]+)", line (?P<line>\d+)')
_PY_SYNTAX = re.compile(r"^(?P<exc>SyntaxError|IndentationError|TabError): (?P<msg>.+)$")


@dataclass(frozen=True)
class Diagnostic:
    path: str
    line: int
    column: int | None
    severity: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" + (f":{self.column}" if self.column else "")
        return f"{where}: {self.severity}: {self.message}"


def display_path(path: str, root: PurePosixPath | None) -> str:
    """A path a tool printed, relative to the workspace root when it lies inside it."""
    if root is not None and path.startswith("/"):
        try:
            return PurePosixPath(path).relative_to(root).as_posix()
        except ValueError:
            return path
    return path[2:] if path.startswith("./") else path


def _parse_diagnostics(lines: list[str], root: PurePosixPath | None) -> Iterator[Diagnostic]:
    for index, raw in enumerate(lines):
        line = raw.rstrip()
        if len(line) > MAX_LINE_CHARS:
            continue
        if (match := _TSC.match(line)) and _EXTENSION.search(match["path"]):
            yield Diagnostic(
                display_path(match["path"], root),
                int(match["line"] or match["line2"]),
                int(match["col"] or match["col2"]),
                match["sev"],
                f"{match['code']}: {match['msg']}",
            )
        elif match := _RUST_HEAD.match(line):
            for following in lines[index + 1 : index + 3]:
                if at := _RUST_AT.match(following):
                    code = f"[{match['code']}] " if match["code"] else ""
                    yield Diagnostic(
                        display_path(at["path"], root),
                        int(at["line"]),
                        int(at["col"]),
                        match["sev"],
                        code + match["msg"],
                    )
                    break
        elif match := _PY_FILE.match(line):
            for following in lines[index + 1 : index + 6]:
                if syntax := _PY_SYNTAX.match(following.strip()):
                    yield Diagnostic(
                        display_path(match["path"], root),
                        int(match["line"]),
                        None,
                        "error",
                        f"{syntax['exc']}: {syntax['msg']}",
                    )
                    break
        elif (match := _COMPILER.match(line)) and _EXTENSION.search(match["path"]):
            column = match["col"]
            yield Diagnostic(
                display_path(match["path"], root),
                int(match["line"]),
                int(column) if column else None,
                match["sev"] or "error",
                match["msg"].strip(),
            )


def diagnostics(output: str, limit: int, root: PurePosixPath | None = None) -> list[str]:
    """Normalized `path:line[:col]: severity: message` lines, de-duplicated, at most `limit`."""
    seen: dict[str, None] = {}
    for diagnostic in _parse_diagnostics(output.splitlines(), root):
        seen.setdefault(str(diagnostic), None)
        if len(seen) >= limit:
            break
    return list(seen)


# failing tests ----------------------------------------------------------------------------------

_FAILURE_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("go", re.compile(r"^\s*--- FAIL: (?P<name>\S+)")),
    (
        "package",
        re.compile(r"^FAIL\s+(?P<name>\S+)\s+(?:[\d.]+s|\[build failed\]|\[setup failed\])"),
    ),
    ("python", re.compile(r"^FAILED (?P<name>\S+)(?: - .*)?$")),
    ("python_error", re.compile(r"^ERROR (?P<name>\S+)(?: - .*)?$")),
    ("rust", re.compile(r"^test (?P<name>\S+) \.\.\. FAILED$")),
    ("tap", re.compile(r"^\s*not ok \d+ - (?P<name>[^#]*[^#\s])(?:\s*#\s*(?P<directive>\w+).*)?$")),
    ("node", re.compile(r"^\s*[\u2715\u2716\u00d7] (?P<name>.+?)(?: \(\d+(?:\.\d+)? ?ms\))?$")),
    ("node", re.compile(r"^FAIL (?P<name>\S+\.[cm]?[jt]sx?)$")),
    ("c", re.compile(r"^(?P<file>[^\s:]+\.c):(?P<line>\d+):(?P<name>\w+):FAIL\b")),
    ("java", re.compile(r"^\[ERROR\]\s+(?P<name>\S+)\s+.*<<< (?:FAILURE|ERROR)!")),
    ("java", re.compile(r"^(?P<name>\S+ > \S+) FAILED$")),
]


def failed_tests(output: str, limit: int) -> list[dict[str, str]]:
    """Failing tests the runner reported (go, pytest, cargo, TAP/node --test, jest, Unity-style C,
    Maven/Gradle), in order of appearance, each once."""
    failures: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for raw in output.splitlines():
        line = raw.rstrip()
        if len(line) > MAX_LINE_CHARS:
            continue
        for kind, pattern in _FAILURE_PATTERNS:
            match = pattern.match(line)
            if match is None:
                continue
            if kind == "tap" and (match["directive"] or "").upper() in ("TODO", "SKIP"):
                break
            name = match["name"].strip()
            if (kind, name) not in seen:
                seen.add((kind, name))
                failures.append({"name": name, "kind": kind, "line": line.strip()})
            break
        if len(failures) >= limit:
            break
    return failures


# stack traces -----------------------------------------------------------------------------------

_PY_FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line (?P<line>\d+)(?:, in (?P<func>.+))?$')
_PY_EXCEPTION = re.compile(r"^(?P<exc>[A-Za-z_][\w.]*)(?::\s?(?P<msg>.*))?$")
_GO_START = re.compile(r"^(?P<kind>panic|fatal error): (?P<msg>.*)$")
_GO_LOCATION = re.compile(r"^\s+(?P<where>\S+:\d+)(?: \+0x[0-9a-f]+)?$")
_RUST_START = re.compile(r"^thread '(?P<thread>[^']*)'(?: \(\d+\))? panicked at (?P<rest>.+)$")
_RUST_FRAME = re.compile(r"^\s*\d+: (?P<func>.+)$")
_RUST_FRAME_AT = re.compile(r"^\s+at (?P<where>.+)$")
_JAVA_START = re.compile(
    r'^Exception in thread "(?P<thread>[^"]*)" (?P<exc>[\w.$]+)(?::\s?(?P<msg>.*))?$'
)
_AT_FRAME = re.compile(r"^\s+at (?P<frame>.+)$")
_JS_START = re.compile(r"^(?:Uncaught )?(?P<exc>[A-Z]\w*(?:Error|Exception))(?::\s?(?P<msg>.*))?$")


@dataclass
class _Trace:
    type: str
    message: str
    exception: str = ""
    frames: list[str] | None = None

    def as_dict(self, max_frames: int) -> dict[str, Any]:
        frames = self.frames or []
        trace: dict[str, Any] = {
            "type": self.type,
            "message": self.message,
            "frames": frames[:max_frames],
            "frame_count": len(frames),
        }
        if self.exception:
            trace["exception"] = self.exception
        return trace


def _python_trace(lines: list[str], start: int) -> tuple[_Trace, int]:
    frames: list[str] = []
    index = start + 1
    while index < len(lines):
        line = lines[index]
        if frame := _PY_FRAME.match(line):
            where = f"{frame['path']}:{frame['line']}"
            frames.append(f"{where} in {frame['func']}" if frame["func"] else where)
        elif line and not line[0].isspace():
            if exception := _PY_EXCEPTION.match(line.strip()):
                message = line.strip()
                return _Trace("python_traceback", message, exception["exc"], frames), index
            break
        index += 1
    return _Trace("python_traceback", "Traceback (most recent call last)", "", frames), index


def _go_trace(lines: list[str], start: int, kind: str, message: str) -> tuple[_Trace, int]:
    frames: list[str] = []
    index = start + 1
    in_goroutine = False
    while index < len(lines):
        line = lines[index]
        if line.startswith("goroutine "):
            if in_goroutine:
                break
            in_goroutine = True
        elif in_goroutine and line and not line[0].isspace():
            location = _GO_LOCATION.match(lines[index + 1]) if index + 1 < len(lines) else None
            if location is None:
                break
            frames.append(f"{line.strip()} at {location['where']}")
            index += 1
        elif in_goroutine and not line.strip() and frames:
            break
        index += 1
    trace_type = "panic" if kind == "panic" else "fatal_error"
    return _Trace(trace_type, message, "", frames), index


def _rust_trace(lines: list[str], start: int, rest: str) -> tuple[_Trace, int]:
    # Rust ≥ 1.73: "panicked at src/lib.rs:3:5:" with the message on the next lines;
    # older: "panicked at 'message', src/lib.rs:3:5".
    old = re.match(r"^'(?P<msg>.*)', (?P<where>\S+)$", rest)
    index = start + 1
    if old:
        message, location = old["msg"], old["where"]
    else:
        location = rest.rstrip(":")
        message_lines: list[str] = []
        while (
            index < len(lines)
            and lines[index].strip()
            and not lines[index].startswith(("note:", "stack backtrace:"))
        ):
            message_lines.append(lines[index].strip())
            index += 1
        message = " ".join(message_lines)
    frames = [location]
    while index < len(lines) and not lines[index].startswith("stack backtrace:"):
        if lines[index].strip() and not lines[index].startswith("note:"):
            return _Trace("rust_panic", message, "", frames), index - 1
        index += 1
    index += 1
    while index < len(lines) and (frame := _RUST_FRAME.match(lines[index])):
        text = frame["func"].strip()
        if index + 1 < len(lines) and (at := _RUST_FRAME_AT.match(lines[index + 1])):
            text = f"{text} at {at['where'].strip()}"
            index += 1
        frames.append(text)
        index += 1
    return _Trace("rust_panic", message, "", frames), index


def _at_frames(lines: list[str], start: int) -> tuple[list[str], int]:
    frames: list[str] = []
    index = start
    while index < len(lines):
        line = lines[index]
        if frame := _AT_FRAME.match(line):
            frames.append(frame["frame"].strip())
        elif not line.startswith("Caused by:") and not re.match(r"^\s+\.\.\. \d+ more", line):
            break
        index += 1
    return frames, index


def stacktraces(output: str, max_traces: int, max_frames: int) -> list[dict[str, Any]]:
    """Python tracebacks, Go panics, Rust panics, Java exceptions and JavaScript errors, each with
    its message and up to `max_frames` frames (`frame_count` counts them all)."""
    lines = output.replace("\r\n", "\n").split("\n")
    traces: list[dict[str, Any]] = []
    index = 0
    while index < len(lines) and len(traces) < max_traces:
        line = lines[index]
        stripped = line.strip()
        trace: _Trace | None = None
        if stripped == "Traceback (most recent call last):":
            trace, index = _python_trace(lines, index)
        elif match := _GO_START.match(stripped):
            trace, index = _go_trace(lines, index, match["kind"], match["msg"])
        elif match := _RUST_START.match(stripped):
            trace, index = _rust_trace(lines, index, match["rest"])
        elif match := _JAVA_START.match(stripped):
            frames, index = _at_frames(lines, index + 1)
            message = f"{match['exc']}: {match['msg']}" if match["msg"] else match["exc"]
            trace = _Trace("java_exception", message, match["exc"], frames)
            index -= 1
        elif (
            (match := _JS_START.match(stripped))
            and index + 1 < len(lines)
            and _AT_FRAME.match(lines[index + 1])
        ):
            frames, index = _at_frames(lines, index + 1)
            trace = _Trace("javascript_error", stripped, match["exc"], frames)
            index -= 1
        if trace is not None:
            traces.append(trace.as_dict(max_frames))
        index += 1
    return traces


# coverage ---------------------------------------------------------------------------------------

_GO_TOTAL = re.compile(r"^total:\s+\(statements\)\s+(?P<percent>\d+(?:\.\d+)?)%", re.M)
_GO_PACKAGE = re.compile(r"coverage: (?P<percent>\d+(?:\.\d+)?)% of statements")
_PYTEST_COV_TOTAL = re.compile(r"^TOTAL\s.*?(?P<percent>\d+(?:\.\d+)?)%\s*$", re.M)


def go_coverage(func_report: str, test_output: str = "") -> float | None:
    """`go tool cover -func` total, else the mean of the per-package figures `go test` printed."""
    if match := _GO_TOTAL.search(func_report):
        return float(match["percent"])
    figures = [float(m["percent"]) for m in _GO_PACKAGE.finditer(test_output)]
    return round(sum(figures) / len(figures), 1) if figures else None


def pytest_coverage(output: str) -> float | None:
    matches = list(_PYTEST_COV_TOTAL.finditer(output))
    return float(matches[-1]["percent"]) if matches else None


# git status / diff ------------------------------------------------------------------------------

_STATUS_NAMES = {
    "A": "added",
    "D": "deleted",
    "R": "renamed",
    "C": "copied",
    "U": "conflict",
    "M": "modified",
    "T": "type_changed",
}


def _status_name(index: str, worktree: str) -> str:
    if index == "?" and worktree == "?":
        return "untracked"
    for code in (index, worktree):
        if code in _STATUS_NAMES:
            return _STATUS_NAMES[code]
    return "changed"


def _status_entry(index: str, worktree: str, path: str, renamed_from: str) -> dict[str, Any]:
    untracked = index == "?" and worktree == "?"
    return {
        "path": path,
        "status": _status_name(index, worktree),
        "index_status": index,
        "worktree_status": worktree,
        "staged": index not in (" ", "?"),
        "unstaged": worktree not in (" ", "?"),
        "untracked": untracked,
        "deleted": "D" in (index, worktree),
        "renamed_from": renamed_from,
    }


def _diff_entry(code: str, path: str, renamed_from: str) -> dict[str, Any]:
    letter = code[:1]
    return {
        "path": path,
        "status": _status_name(letter, " "),
        "index_status": letter,
        "worktree_status": "",
        "staged": False,
        "unstaged": False,
        "untracked": False,
        "deleted": letter == "D",
        "renamed_from": renamed_from,
    }


def parse_status_z(output: str) -> list[dict[str, Any]]:
    """`git status --porcelain=v1 -z`: `XY path\\0`, renames followed by `old\\0`."""
    records = output.split("\0")
    entries: list[dict[str, Any]] = []
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


def parse_name_status_z(output: str) -> list[dict[str, Any]]:
    """`git diff --name-status -z`: `CODE\\0path\\0`, renames/copies `CODE\\0old\\0new\\0`."""
    records = output.split("\0")
    entries: list[dict[str, Any]] = []
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


def parse_status_text(output: str) -> tuple[str, list[dict[str, Any]]]:
    """Provided text: porcelain status lines (`XY path`, `XY old -> new`) or name-status lines
    (`M\\tpath`, `R100\\told\\tnew`)."""
    lines = [line.rstrip("\r") for line in output.splitlines() if line.strip()]
    porcelain = any(len(line) >= 3 and line[2] == " " and "\t" not in line for line in lines)
    entries: list[dict[str, Any]] = []
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


# declarations -----------------------------------------------------------------------------------

_MODIFIERS = (
    r"^\s*(?:(?:export|default|pub(?:\([^)]*\))?|async|static|public|private|protected|final|"
    r"abstract|inline|extern|unsafe|override|virtual)\s+)*"
)
# Words that start statements, not definitions, in C and the languages searched alongside it.
_STATEMENT_WORDS = frozenset(
    {"return", "else", "if", "while", "for", "switch", "case", "sizeof", "do", "goto", "new"}
    | {"assert", "await", "yield", "raise", "throw", "not", "and", "or", "in", "is", "lambda"}
    | {"del", "with", "elif", "print", "echo", "typeof", "delete"}
)


def is_declaration(snippet: str, symbol: str, case_sensitive: bool) -> bool:
    """Whether the line declares `symbol` (func/def/fn/class/struct/type/let/const/var/#define,
    `symbol :=`, or a C-style function definition)."""
    flags = 0 if case_sensitive else re.IGNORECASE
    name = re.escape(symbol)
    keyword = (
        r"(?:type|class|struct|enum|union|interface|trait|def|fn|function\*?|let|var|const|mod|"
        r"impl|typedef(?:\s+\w+)*)"
    )
    patterns = [
        _MODIFIERS + r"func\s*(?:\([^)]*\)\s*)?" + name + r"\b",
        _MODIFIERS + keyword + r"\s+" + name + r"\b",
        r"^\s*" + name + r"\s*(?::=|=(?!=))",
        r"^\s*#\s*define\s+" + name + r"\b",
    ]
    if any(re.search(pattern, snippet, flags) for pattern in patterns):
        return True
    c_definition = re.match(
        r"^\s*(?P<first>[A-Za-z_]\w*)[\w\s\*]*?[\s\*]" + name + r"\s*\([^;]*$", snippet, flags
    )
    return c_definition is not None and c_definition["first"] not in _STATEMENT_WORDS
