"""repo.* — project-aware build, test, analysis and search tools (contract §4.2, §4.3).

The project type is detected from marker files in the contract's order; each project type brings
its commands (`ProjectCommands` in go.py, rust.py, node.py, python.py, c.py and Java here).
Outcome rule for every tool that runs a toolchain: see `languages.OUTCOME_RULE`.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

from serve_app.domain.capability import (
    ArgField,
    Capability,
    CostHint,
    Idempotency,
    PathField,
    RiskLevel,
    Scope,
    SideEffects,
)
from serve_app.domain.errors import ErrorCode, ServiceError, invalid_argument
from serve_app.tools import c, go, java, node, projects, python, rust
from serve_app.tools.base import Tool, ToolContext, ToolFailed, ToolResult, define
from serve_app.tools.git_runner import ENVIRONMENT as GIT_ENVIRONMENT
from serve_app.tools.git_runner import git_argv, repository
from serve_app.tools.languages import (
    DENY_CHARACTERS,
    MAX_DIAGNOSTICS,
    MAX_FAILED_TESTS,
    OUTCOME_NOTE,
    Command,
    Completed,
    Job,
    ProjectCommands,
    checked_extra_args,
    checked_target,
    extra_args_policy,
    run_toolchain,
)

NO_PROJECT = (
    "no supported project found (expected go.mod, Cargo.toml, package.json, pyproject.toml/"
    "pytest.ini/requirements.txt, pom.xml/mvnw, build.gradle/gradlew, CMakeLists.txt or *.c)"
)
EXCERPT_CHARS = 4096
SNIPPET_CHARS = 512
SEARCH_OUTPUT_LIMIT = 8 * 1024 * 1024

COMMANDS: dict[str, ProjectCommands] = {
    "go": go.COMMANDS,
    "rust": rust.COMMANDS,
    "node": node.COMMANDS,
    "python": python.COMMANDS,
    "c": c.COMMANDS,
    "java/maven": java.MAVEN,
    "java/gradle": java.GRADLE,
}


# shared -----------------------------------------------------------------------------------------


async def detect(ctx: ToolContext) -> projects.Project:
    return await projects.detect(ctx.runtime)


async def _job(
    ctx: ToolContext, args: dict[str, Any], output_kb: int, mode: str | None
) -> tuple[Job, ProjectCommands]:
    """The detected project's commands and a job with checked extra args (`mode` picks the
    build or test allowlist; None: the tool takes no extra args)."""
    project = await detect(ctx)
    if not project.known:
        raise ToolFailed(ErrorCode.EXECUTION_FAILED, NO_PROJECT, exit_code=1)
    commands = COMMANDS[f"java/{project.flavor}" if project.name == "java" else project.name]
    extra: list[str] = []
    if mode is not None:
        rules = commands.build_flags if mode == "build" else commands.test_flags
        extra = await checked_extra_args(
            ctx, args.get("extra_args"), rules, f"{project.name} {mode}"
        )
    target = checked_target(args.get("target"))
    return Job(ctx, project, target, extra, output_kb), commands


def _result(output: dict[str, Any], run: Completed) -> ToolResult:
    return ToolResult(output=output, logs=run.logs, exit_code=run.exit_code)


def _ran(project: projects.Project, run: Completed, root: PurePosixPath) -> dict[str, Any]:
    return {
        "project_type": project.name,
        "command": run.command,
        "exit_code": run.exit_code,
        "diagnostics": projects.diagnostics(run.output, MAX_DIAGNOSTICS, root),
        "output": run.output,
    }


_STRING = {"type": "string"}
_INT = {"type": "integer"}
_BOOL = {"type": "boolean"}
_STRINGS = {"type": "array", "items": {"type": "string"}}
_TARGET = {"type": "string", "description": "Package, path or test selector for the toolchain"}
_EXTRA_ARGS = {
    "type": "array",
    "items": {"type": "string", "maxLength": 64},
    "maxItems": 8,
    "description": "Extra toolchain flags from the project type's allowlist",
}


def _int(minimum: int, maximum: int, default: int) -> dict[str, Any]:
    return {
        "type": "integer",
        "minimum": minimum,
        "maximum": maximum,
        "description": f"Default {default}",
    }


def _repo_tool(
    name: str,
    description: str,
    *,
    risk: RiskLevel,
    side_effects: SideEffects,
    idempotency: Idempotency,
    timeout: int,
    output_kb: int,
    cost: CostHint,
    runs_toolchain: bool = True,
    **fields: Any,
) -> Capability:
    return define(
        name=name,
        description=f"{description} {OUTCOME_NOTE}" if runs_toolchain else description,
        scope=Scope.REPO,
        risk=risk,
        approval=False,
        side_effects=side_effects,
        idempotency=idempotency,
        timeout=timeout,
        output_kb=output_kb,
        cost=cost,
        **fields,
    )


# repo.detect_project_type / repo.detect_toolchain ----------------------------------------------

DETECT_PROJECT_TYPE = _repo_tool(
    "repo.detect_project_type",
    "Detect repository project type for build/test orchestration.",
    risk=RiskLevel.LOW,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.GUARANTEED,
    timeout=15,
    output_kb=64,
    cost=CostHint.LOW,
    runs_toolchain=False,
    properties={},
    outputs={"project_type": _STRING, "flavor": _STRING},
    examples=[{}],
)


async def _detect_project_type(ctx: ToolContext, _args: dict[str, Any]) -> ToolResult:
    project = await detect(ctx)
    return ToolResult(output={"project_type": project.name, "flavor": project.flavor})


DETECT_TOOLCHAIN = _repo_tool(
    "repo.detect_toolchain",
    "Detect language toolchain metadata for orchestration (and whether the toolchain's command "
    "is installed).",
    risk=RiskLevel.LOW,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.GUARANTEED,
    timeout=20,
    output_kb=64,
    cost=CostHint.LOW,
    runs_toolchain=False,
    properties={},
    outputs={
        "language": _STRING,
        "build_system": _STRING,
        "test_framework": _STRING,
        "containerizable": _BOOL,
        "project_type": _STRING,
        "flavor": _STRING,
        "toolchain_command": _STRING,
        "toolchain_available": _BOOL,
    },
    examples=[{}],
)


async def _detect_toolchain(ctx: ToolContext, _args: dict[str, Any]) -> ToolResult:
    markers = await projects.markers(ctx.runtime)
    project = projects.classify(markers)
    if not project.known:
        project = projects.classify(markers, bool(await projects.c_sources(ctx.runtime)))
    toolchain = await projects.toolchain(ctx.runtime, project, markers)
    available = bool(toolchain.command) and await ctx.runtime.which(toolchain.command) is not None
    facts = {
        "language": toolchain.language,
        "build_system": toolchain.build_system,
        "test_framework": toolchain.test_framework,
        "containerizable": projects.containerizable(markers),
        "project_type": project.name,
        "flavor": project.flavor,
        "toolchain_command": toolchain.command,
        "toolchain_available": available,
    }
    return ToolResult(output=facts)


# repo.validate / build / test / run_tests / static_analysis -------------------------------------

VALIDATE = _repo_tool(
    "repo.validate",
    "Run toolchain-aware repository validation (syntax/compile checks).",
    risk=RiskLevel.MEDIUM,
    side_effects=SideEffects.REVERSIBLE,
    idempotency=Idempotency.BEST_EFFORT,
    timeout=180,
    output_kb=2048,
    cost=CostHint.MEDIUM,
    properties={"target": _TARGET},
    outputs={
        "language": _STRING,
        "build_system": _STRING,
        "test_framework": _STRING,
        "project_type": _STRING,
        "command": _STRINGS,
        "exit_code": _INT,
        "diagnostics": _STRINGS,
        "output": _STRING,
    },
    examples=[{"target": "./..."}],
)


async def _validate(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    job, commands = await _job(ctx, args, 2048, None)
    run = await commands.validate(job)
    toolchain = await projects.toolchain(ctx.runtime, job.project)
    output = {
        "language": toolchain.language,
        "build_system": toolchain.build_system,
        "test_framework": toolchain.test_framework,
        **_ran(job.project, run, job.root),
    }
    return _result(output, run)


_RUN_OUTPUTS = {
    "project_type": _STRING,
    "command": _STRINGS,
    "exit_code": _INT,
    "diagnostics": _STRINGS,
    "output": _STRING,
}

BUILD = _repo_tool(
    "repo.build",
    "Execute project build command with repository-aware defaults.",
    risk=RiskLevel.MEDIUM,
    side_effects=SideEffects.REVERSIBLE,
    idempotency=Idempotency.BEST_EFFORT,
    timeout=240,
    output_kb=2048,
    cost=CostHint.HIGH,
    network=True,
    properties={"target": _TARGET, "extra_args": _EXTRA_ARGS},
    outputs=_RUN_OUTPUTS,
    arg_fields=[extra_args_policy("build")],
    examples=[{"target": "./..."}],
)


async def _build(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    job, commands = await _job(ctx, args, 2048, "build")
    run = await commands.build(job)
    return _result(_ran(job.project, run, job.root), run)


_TEST_OUTPUTS = _RUN_OUTPUTS | {"failed_count": _INT, "failed_tests": {"type": "array"}}


def _test_capability(name: str, description: str) -> Capability:
    return _repo_tool(
        name,
        description,
        risk=RiskLevel.MEDIUM,
        side_effects=SideEffects.REVERSIBLE,
        idempotency=Idempotency.BEST_EFFORT,
        timeout=180,
        output_kb=2048,
        cost=CostHint.HIGH,
        properties={"target": _TARGET, "extra_args": _EXTRA_ARGS},
        outputs=_TEST_OUTPUTS,
        arg_fields=[extra_args_policy("test")],
        examples=[{"target": "./..."}],
    )


TEST = _test_capability(
    "repo.test", "Execute repository test suite (preferred alias of repo.run_tests)."
)
RUN_TESTS = _test_capability(
    "repo.run_tests", "Execute repository test suite with repo-aware defaults."
)


async def _test(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    job, commands = await _job(ctx, args, 2048, "test")
    run = await commands.test(job)
    failures = projects.failed_tests(run.output, MAX_FAILED_TESTS)
    output = _ran(job.project, run, job.root) | {
        "failed_count": len(failures),
        "failed_tests": failures,
    }
    return _result(output, run)


STATIC_ANALYSIS = _repo_tool(
    "repo.static_analysis",
    "Run project-aware static analysis and lint checks (go vet, cargo clippy, npm run lint, "
    "ruff/pyflakes, cc -fsyntax-only with warnings, mvn verify / gradle check).",
    risk=RiskLevel.LOW,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.BEST_EFFORT,
    timeout=180,
    output_kb=2048,
    cost=CostHint.MEDIUM,
    properties={"target": _TARGET},
    outputs=_RUN_OUTPUTS,
    examples=[{"target": "./..."}],
)


async def _static_analysis(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    job, commands = await _job(ctx, args, 2048, None)
    run = await commands.static_analysis(job)
    return _result(_ran(job.project, run, job.root), run)


# repo.coverage_report / repo.package -------------------------------------------------------------

COVERAGE_REPORT = _repo_tool(
    "repo.coverage_report",
    "Run repository tests and return a normalized coverage report (Go: go test -coverprofile; "
    "Python: pytest-cov when installed; otherwise coverage_supported is false).",
    risk=RiskLevel.MEDIUM,
    side_effects=SideEffects.REVERSIBLE,
    idempotency=Idempotency.BEST_EFFORT,
    timeout=240,
    output_kb=2048,
    cost=CostHint.HIGH,
    properties={"target": _TARGET},
    outputs={
        "project_type": _STRING,
        "command": _STRINGS,
        "coverage_supported": _BOOL,
        "coverage_percent": {"type": "number"},
        "exit_code": _INT,
        "output": _STRING,
    },
    examples=[{"target": "./..."}],
)


async def _coverage_report(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    job, commands = await _job(ctx, args, 2048, None)
    coverage = await commands.coverage(job)
    run = coverage.run
    output = {
        "project_type": job.project.name,
        "command": run.command,
        "coverage_supported": coverage.supported,
        "coverage_percent": coverage.percent,
        "exit_code": run.exit_code,
        "output": run.output,
    }
    return _result(output, run)


PACKAGE = _repo_tool(
    "repo.package",
    "Package repository output into deployable artifacts (under .workspace-dist/ for Go, "
    "Python wheels, npm tarballs and C; target/ or build/ for cargo and Java).",
    risk=RiskLevel.MEDIUM,
    side_effects=SideEffects.REVERSIBLE,
    idempotency=Idempotency.BEST_EFFORT,
    timeout=300,
    output_kb=2048,
    cost=CostHint.HIGH,
    network=True,
    properties={"target": _TARGET},
    outputs={
        "project_type": _STRING,
        "command": _STRINGS,
        "artifact_path": _STRING,
        "exit_code": _INT,
        "output": _STRING,
    },
    examples=[{"target": "."}],
)


async def _package(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    job, commands = await _job(ctx, args, 2048, None)
    packaged = await commands.package(job)
    run = packaged.run
    output = {
        "project_type": job.project.name,
        "command": run.command,
        "artifact_path": packaged.artifact_path if run.exit_code == 0 else "",
        "exit_code": run.exit_code,
        "output": run.output,
    }
    return _result(output, run)


# repo.test_failures_summary / repo.stacktrace_summary --------------------------------------------


async def _output_or_test_run(
    ctx: ToolContext, args: dict[str, Any], output_kb: int
) -> tuple[str, str, Completed | None]:
    """The text to summarize: the caller's `output`, else a test run's (source `test_run`)."""
    provided = (args.get("output") or "").strip()
    if provided:
        project = await detect(ctx)
        return project.name, provided, None
    job, commands = await _job(ctx, args, output_kb, "test")
    run = await commands.test(job)
    return job.project.name, run.output, run


def _excerpt(text: str) -> str:
    # Runners print their failure summaries last, so the excerpt is the tail.
    return text if len(text) <= EXCERPT_CHARS else "[…]\n" + text[-EXCERPT_CHARS:]


TEST_FAILURES_SUMMARY = _repo_tool(
    "repo.test_failures_summary",
    "Summarize failed tests from provided test output or by executing repository tests.",
    risk=RiskLevel.LOW,
    side_effects=SideEffects.REVERSIBLE,
    idempotency=Idempotency.BEST_EFFORT,
    timeout=180,
    output_kb=1024,
    cost=CostHint.MEDIUM,
    properties={
        "output": {"type": "string", "description": "Test output to summarize (else run tests)"},
        "target": _TARGET,
        "extra_args": _EXTRA_ARGS,
        "max_failures": _int(1, 200, 30),
        "max_diagnostics": _int(1, 200, 30),
    },
    outputs={
        "project_type": _STRING,
        "source": _STRING,
        "command": _STRINGS,
        "exit_code": _INT,
        "failed_count": _INT,
        "failed_tests": {"type": "array"},
        "diagnostics": _STRINGS,
        "output_excerpt": _STRING,
        "summary": _STRING,
        "output": _STRING,
    },
    arg_fields=[extra_args_policy("test")],
    examples=[
        {"output": "--- FAIL: TestCreateTodo (0.00s)\nFAIL\tgithub.com/acme/todo\t0.01s"},
        {"target": "./...", "max_failures": 20},
    ],
)


async def _test_failures_summary(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    project_type, text, run = await _output_or_test_run(ctx, args, 1024)
    failures = projects.failed_tests(text, args.get("max_failures", 30))
    names = ", ".join(failure["name"] for failure in failures[:5])
    summary = f"identified {len(failures)} failing tests" + (f": {names}" if names else "")
    output = {
        "project_type": project_type,
        "source": "provided_output" if run is None else "test_run",
        "command": run.command if run else [],
        "exit_code": run.exit_code if run else 0,
        "failed_count": len(failures),
        "failed_tests": failures,
        "diagnostics": projects.diagnostics(text, args.get("max_diagnostics", 30), ctx.workspace),
        "output_excerpt": _excerpt(text),
        "summary": summary,
        "output": summary,
    }
    return ToolResult(
        output=output, logs=run.logs if run else [], exit_code=run.exit_code if run else 0
    )


STACKTRACE_SUMMARY = _repo_tool(
    "repo.stacktrace_summary",
    "Summarize stacktraces from provided output or by executing repository tests (Python "
    "tracebacks, Go panics, Rust panics, Java exceptions, JavaScript errors).",
    risk=RiskLevel.LOW,
    side_effects=SideEffects.REVERSIBLE,
    idempotency=Idempotency.BEST_EFFORT,
    timeout=180,
    output_kb=1024,
    cost=CostHint.MEDIUM,
    properties={
        "output": {"type": "string", "description": "Output to summarize (else run tests)"},
        "target": _TARGET,
        "extra_args": _EXTRA_ARGS,
        "max_traces": _int(1, 50, 10),
        "max_frames": _int(1, 80, 20),
    },
    outputs={
        "project_type": _STRING,
        "source": _STRING,
        "command": _STRINGS,
        "exit_code": _INT,
        "trace_count": _INT,
        "stacktraces": {"type": "array"},
        "diagnostics": _STRINGS,
        "summary": _STRING,
        "output": _STRING,
    },
    arg_fields=[extra_args_policy("test")],
    examples=[
        {"output": "panic: runtime error\n\ngoroutine 1 [running]:\nmain.main()\n\t/w/main.go:11"},
        {"target": "./...", "max_traces": 5, "max_frames": 12},
    ],
)


async def _stacktrace_summary(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    project_type, text, run = await _output_or_test_run(ctx, args, 1024)
    traces = projects.stacktraces(text, args.get("max_traces", 10), args.get("max_frames", 20))
    kinds = ", ".join(sorted({trace["type"] for trace in traces}))
    summary = f"identified {len(traces)} stacktraces" + (f" ({kinds})" if kinds else "")
    output = {
        "project_type": project_type,
        "source": "provided_output" if run is None else "test_run",
        "command": run.command if run else [],
        "exit_code": run.exit_code if run else 0,
        "trace_count": len(traces),
        "stacktraces": traces,
        "diagnostics": projects.diagnostics(text, 40, ctx.workspace),
        "summary": summary,
        "output": summary,
    }
    return ToolResult(
        output=output, logs=run.logs if run else [], exit_code=run.exit_code if run else 0
    )


# repo.changed_files -----------------------------------------------------------------------------

CHANGED_FILES = _repo_tool(
    "repo.changed_files",
    "Return deterministic changed file metadata from git status/diff or provided status output "
    "(git status --porcelain, or git diff --name-status <base_ref>...HEAD).",
    risk=RiskLevel.LOW,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.BEST_EFFORT,
    timeout=90,
    output_kb=1024,
    cost=CostHint.LOW,
    runs_toolchain=False,
    properties={
        "base_ref": {"type": "string", "maxLength": 120},
        "path": {"type": "string", "maxLength": 4096},
        "max_files": _int(1, 2000, 200),
        "include_untracked": {"type": "boolean", "description": "Default true"},
        "output": {"type": "string", "description": "git status --porcelain or --name-status text"},
    },
    outputs={
        "source": _STRING,
        "mode": _STRING,
        "base_ref": _STRING,
        "path": _STRING,
        "command": _STRINGS,
        "exit_code": _INT,
        "changed_count": _INT,
        "changed_files": {"type": "array"},
        "truncated": _BOOL,
        "summary": _STRING,
        "output": _STRING,
    },
    path_fields=[PathField(field="path")],
    arg_fields=[ArgField(field="base_ref", max_length=120, deny_characters=DENY_CHARACTERS)],
    examples=[{"path": ".", "max_files": 100}, {"base_ref": "origin/main", "path": "src"}],
)


def _git_failed(run: Completed, what: str) -> ToolFailed:
    code = ErrorCode.GIT_USAGE_ERROR if run.exit_code == 129 else ErrorCode.GIT_REPO_ERROR
    first = next((line for line in run.output.splitlines() if line.strip()), f"{what} failed")
    output = {"command": run.command, "exit_code": run.exit_code, "output": run.output}
    return ToolFailed(code, first.strip(), exit_code=run.exit_code, output=output, logs=run.logs)


async def _changed_files(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    path = await ctx.path(args.get("path") or ".")
    base_ref = checked_target(args.get("base_ref"), "base_ref")
    include_untracked = args.get("include_untracked", True)
    limit = args.get("max_files", 200)
    # Porcelain lines start with a status column that may be a space: keep the text as given.
    provided = args.get("output") or ""
    provided = provided if provided.strip() else ""
    command: list[str] = []
    exit_code = 0
    logs = []
    if provided:
        source = "provided_output"
        mode, entries = projects.parse_status_text(provided)
    else:
        source = "git"
        pathspec = ["--", path.relative]
        if base_ref:
            mode = "base_ref_diff"
            git_args = ["diff", "--name-status", "-z", "--find-renames", f"{base_ref}...HEAD"]
        else:
            mode = "working_tree"
            untracked = "--untracked-files=all" if include_untracked else "--untracked-files=no"
            git_args = ["status", "--porcelain=v1", "-z", untracked]
        repo = await repository(ctx.runtime)
        argv = git_argv(ctx.workspace, [*git_args, *pathspec], repository=repo)
        run = await run_toolchain(ctx, Command(argv, "git", GIT_ENVIRONMENT), output_kb=4096)
        if run.exit_code != 0:
            raise _git_failed(run, "git")
        command, exit_code, logs = run.command, run.exit_code, run.logs
        entries = (
            projects.parse_name_status_z(run.output)
            if base_ref
            else projects.parse_status_z(run.output)
        )
    if not include_untracked:
        entries = [entry for entry in entries if not entry["untracked"]]
    if provided and path.requested != ".":
        prefix = path.requested + "/"
        entries = [
            e for e in entries if e["path"] == path.requested or e["path"].startswith(prefix)
        ]
    entries.sort(key=lambda entry: (entry["path"], entry["status"]))
    summary = f"identified {len(entries)} changed files"
    output = {
        "source": source,
        "mode": mode,
        "base_ref": base_ref,
        "path": path.requested,
        "command": command,
        "exit_code": exit_code,
        "changed_count": min(len(entries), limit),
        "changed_files": entries[:limit],
        "truncated": len(entries) > limit,
        "summary": summary,
        "output": summary,
    }
    return ToolResult(output=output, logs=logs, exit_code=exit_code)


# repo.symbol_search / repo.find_references ------------------------------------------------------

SYMBOL_MAX = 160


def _checked_symbol(value: str) -> str:
    symbol = value.strip()
    if not symbol:
        raise invalid_argument("symbol is required")
    if len(symbol) > SYMBOL_MAX or any(c in symbol for c in "\x00\n\r"):
        raise invalid_argument(f"symbol must be one line of at most {SYMBOL_MAX} characters")
    return symbol


def _column(snippet: str, symbol: str, *, regex: bool, case_sensitive: bool, word: bool) -> int:
    flags = 0 if case_sensitive else re.IGNORECASE
    pattern = symbol if regex else re.escape(symbol)
    if word:
        pattern = rf"(?<![A-Za-z0-9_])(?:{pattern})(?![A-Za-z0-9_])"
    try:
        match = re.search(pattern, snippet, flags)
    except re.error:
        return 1
    return match.start() + 1 if match else 1


async def _grep(
    ctx: ToolContext,
    symbol: str,
    path_value: str | None,
    *,
    case_sensitive: bool,
    whole_word: bool,
    use_regex: bool,
    limit: int,
) -> tuple[Completed, list[dict[str, Any]], bool]:
    """`grep -r` (symlinks inside the tree are not followed) with the symbol after `--`."""
    path = await ctx.path(path_value or ".")
    if await ctx.runtime.stat(path) is None:
        raise ServiceError(ErrorCode.NOT_FOUND, f"path not found: {path.requested}")
    argv = ["grep", "-r", "-n", "-H", "-I", "-Z", "--exclude-dir=.git"]
    argv += [] if case_sensitive else ["-i"]
    argv += ["-w"] if whole_word else []
    argv += [
        "-E" if use_regex else "-F",
        "--",
        symbol,
        "." if path.relative == "." else path.relative,
    ]
    run = await run_toolchain(ctx, Command(argv, "grep"), output_kb=SEARCH_OUTPUT_LIMIT // 1024)
    matches: list[dict[str, Any]] = []
    truncated = run.truncated
    for line in run.output.splitlines():
        name, separator, rest = line.partition("\0")
        number, colon, snippet = rest.partition(":")
        if not separator or not colon or not number.isdigit():
            continue
        if len(matches) >= limit:
            truncated = True
            break
        matches.append(
            {
                "path": name.removeprefix("./"),
                "line": int(number),
                "column": _column(
                    snippet, symbol, regex=use_regex, case_sensitive=case_sensitive, word=whole_word
                ),
                "snippet": snippet[:SNIPPET_CHARS],
            }
        )
    if run.exit_code >= 2 and not matches:
        message = run.output.strip().splitlines()[-1] if run.output.strip() else "grep failed"
        if use_regex:
            raise invalid_argument(f"invalid regular expression: {message}")
        raise ToolFailed(ErrorCode.EXECUTION_FAILED, message, exit_code=run.exit_code)
    matches.sort(key=lambda match: (match["path"], match["line"], match["column"]))
    return run, matches, truncated


SYMBOL_SEARCH = _repo_tool(
    "repo.symbol_search",
    "Search symbols with deterministic file/line/column matches in allowed workspace paths "
    "(grep -F, or -E with use_regex; .git and binary files skipped).",
    risk=RiskLevel.LOW,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.BEST_EFFORT,
    timeout=120,
    output_kb=1024,
    cost=CostHint.MEDIUM,
    runs_toolchain=False,
    properties={
        "symbol": {"type": "string", "minLength": 1, "maxLength": SYMBOL_MAX},
        "path": {"type": "string", "maxLength": 4096},
        "max_results": _int(1, 2000, 200),
        "case_sensitive": {"type": "boolean", "description": "Default true"},
        "whole_word": {"type": "boolean", "description": "Default false"},
        "use_regex": {"type": "boolean", "description": "POSIX extended regex (default false)"},
    },
    required=["symbol"],
    outputs={
        "symbol": _STRING,
        "path": _STRING,
        "case_sensitive": _BOOL,
        "whole_word": _BOOL,
        "use_regex": _BOOL,
        "command": _STRINGS,
        "exit_code": _INT,
        "matches_count": _INT,
        "truncated": _BOOL,
        "matches": {"type": "array"},
        "summary": _STRING,
        "output": _STRING,
    },
    path_fields=[PathField(field="path")],
    arg_fields=[
        ArgField(field="symbol", max_length=SYMBOL_MAX, deny_characters=["\x00", "\n", "\r"])
    ],
    examples=[{"symbol": "CreateTodo", "path": "."}, {"symbol": "^Test.*Todo", "use_regex": True}],
)


async def _symbol_search(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    symbol = _checked_symbol(args["symbol"])
    options = {
        "case_sensitive": args.get("case_sensitive", True),
        "whole_word": args.get("whole_word", False),
        "use_regex": args.get("use_regex", False),
    }
    run, matches, truncated = await _grep(
        ctx, symbol, args.get("path"), limit=args.get("max_results", 200), **options
    )
    summary = f"found {len(matches)} symbol matches"
    output = {
        "symbol": symbol,
        "path": (await ctx.path(args.get("path") or ".")).requested,
        **options,
        "command": run.command,
        "exit_code": run.exit_code,
        "matches_count": len(matches),
        "truncated": truncated,
        "matches": matches,
        "summary": summary,
        "output": summary,
    }
    return ToolResult(output=output, exit_code=run.exit_code)


FIND_REFERENCES = _repo_tool(
    "repo.find_references",
    "Find symbol references with declaration tagging for refactor-safe reasoning (whole-word, "
    "fixed-string matches).",
    risk=RiskLevel.LOW,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.BEST_EFFORT,
    timeout=120,
    output_kb=1024,
    cost=CostHint.MEDIUM,
    runs_toolchain=False,
    properties={
        "symbol": {"type": "string", "minLength": 1, "maxLength": SYMBOL_MAX},
        "path": {"type": "string", "maxLength": 4096},
        "max_references": _int(1, 2000, 200),
        "max_results": {**_int(1, 2000, 200), "description": "Alias of max_references"},
        "case_sensitive": {"type": "boolean", "description": "Default true"},
        "include_declarations": {"type": "boolean", "description": "Default true"},
    },
    required=["symbol"],
    outputs={
        "symbol": _STRING,
        "path": _STRING,
        "case_sensitive": _BOOL,
        "include_declarations": _BOOL,
        "command": _STRINGS,
        "exit_code": _INT,
        "references_count": _INT,
        "declaration_count": _INT,
        "truncated": _BOOL,
        "references": {"type": "array"},
        "summary": _STRING,
        "output": _STRING,
    },
    path_fields=[PathField(field="path")],
    arg_fields=[
        ArgField(field="symbol", max_length=SYMBOL_MAX, deny_characters=["\x00", "\n", "\r"])
    ],
    examples=[
        {"symbol": "CreateTodo", "path": "."},
        {"symbol": "Todo", "include_declarations": False},
    ],
)


async def _find_references(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    symbol = _checked_symbol(args["symbol"])
    case_sensitive = args.get("case_sensitive", True)
    include_declarations = args.get("include_declarations", True)
    limit = args.get("max_references", args.get("max_results", 200))
    run, matches, truncated = await _grep(
        ctx,
        symbol,
        args.get("path"),
        case_sensitive=case_sensitive,
        whole_word=True,
        use_regex=False,
        limit=2000,
    )
    references: list[dict[str, Any]] = []
    declarations = 0
    for match in matches:
        declaration = projects.is_declaration(match["snippet"], symbol, case_sensitive)
        declarations += declaration
        if declaration and not include_declarations:
            continue
        if len(references) >= limit:
            truncated = True
            break
        references.append(match | {"is_declaration": declaration})
    summary = f"found {len(references)} symbol references ({declarations} declarations)"
    output = {
        "symbol": symbol,
        "path": (await ctx.path(args.get("path") or ".")).requested,
        "case_sensitive": case_sensitive,
        "include_declarations": include_declarations,
        "command": run.command,
        "exit_code": run.exit_code,
        "references_count": len(references),
        "declaration_count": declarations,
        "truncated": truncated,
        "references": references,
        "summary": summary,
        "output": summary,
    }
    return ToolResult(output=output, exit_code=run.exit_code)


TOOLS: list[Tool] = [
    Tool(DETECT_PROJECT_TYPE, _detect_project_type),
    Tool(DETECT_TOOLCHAIN, _detect_toolchain),
    Tool(VALIDATE, _validate),
    Tool(BUILD, _build),
    Tool(TEST, _test),
    Tool(RUN_TESTS, _test),
    Tool(TEST_FAILURES_SUMMARY, _test_failures_summary),
    Tool(STACKTRACE_SUMMARY, _stacktrace_summary),
    Tool(CHANGED_FILES, _changed_files),
    Tool(SYMBOL_SEARCH, _symbol_search),
    Tool(FIND_REFERENCES, _find_references),
    Tool(COVERAGE_REPORT, _coverage_report),
    Tool(STATIC_ANALYSIS, _static_analysis),
    Tool(PACKAGE, _package),
]
