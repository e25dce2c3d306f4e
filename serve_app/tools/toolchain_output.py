"""What toolchains print, parsed: compiler/linter diagnostics, failing tests, stack traces and
coverage totals, from the text of a build, test or lint run.

Plain functions over untrusted text (every pattern is linear in a line's length); nothing here
runs a command or touches the workspace.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import NotRequired, TypedDict

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


class Failure(TypedDict):
    """A failing test a runner reported: its name, the pattern that found it (`kind`: go,
    package, python, python_error, rust, tap, node, c, java) and the line it was on."""

    name: str
    kind: str
    line: str


def failed_tests(output: str, limit: int) -> list[Failure]:
    """Failing tests the runner reported (go, pytest, cargo, TAP/node --test, jest, Unity-style C,
    Maven/Gradle), in order of appearance, each once."""
    failures: list[Failure] = []
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
                failures.append(Failure(name=name, kind=kind, line=line.strip()))
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


class Trace(TypedDict):
    """A stack trace: its kind (`type`: python_traceback, panic, fatal_error, rust_panic,
    java_exception, javascript_error), message, leading frames and how many frames it had; the
    exception's name when the trace names one."""

    type: str
    message: str
    frames: list[str]
    frame_count: int
    exception: NotRequired[str]


@dataclass
class _Trace:
    type: str
    message: str
    exception: str = ""
    frames: list[str] | None = None

    def as_dict(self, max_frames: int) -> Trace:
        frames = self.frames or []
        trace = Trace(
            type=self.type,
            message=self.message,
            frames=frames[:max_frames],
            frame_count=len(frames),
        )
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


def stacktraces(output: str, max_traces: int, max_frames: int) -> list[Trace]:
    """Python tracebacks, Go panics, Rust panics, Java exceptions and JavaScript errors, each with
    its message and up to `max_frames` frames (`frame_count` counts them all)."""
    lines = output.replace("\r\n", "\n").split("\n")
    traces: list[Trace] = []
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
