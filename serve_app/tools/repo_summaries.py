"""repo.test_failures_summary and repo.stacktrace_summary: the failing tests and the stack traces
in output the caller provides, or in a run of the project's tests (`repo.project_job`), summed
up within the tool's output limit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field

from serve_app.domain.capability import CostHint, Idempotency, RiskLevel, SideEffects
from serve_app.domain.models import LogLine
from serve_app.tools import projects, toolchain_output
from serve_app.tools.base import Tool, ToolContext, ToolResult
from serve_app.tools.declare import Arguments, Output, bounded, tool
from serve_app.tools.fitting import leading, room_left, size
from serve_app.tools.languages import (
    Completed,
    ExtraArgs,
    FailedTest,
    extra_args_policy,
)
from serve_app.tools.repo import Target, project_job, repo_metadata

EXCERPT_CHARS = 4096
STACKTRACE_DIAGNOSTICS = 40


@dataclass(frozen=True)
class Summarized:
    """The text to summarize: the caller's output, else the output of a test run (`run`)."""

    project_type: str
    text: str
    run: Completed | None

    @property
    def source(self) -> Literal["provided_output", "test_run"]:
        return "provided_output" if self.run is None else "test_run"

    @property
    def command(self) -> list[str]:
        return self.run.command if self.run else []

    @property
    def exit_code(self) -> int:
        return self.run.exit_code if self.run else 0

    @property
    def logs(self) -> list[LogLine]:
        return self.run.logs if self.run else []


async def summarized(
    ctx: ToolContext, output: str, target: str, extra_args: list[str]
) -> Summarized:
    """The caller's `output` when it has any text, else a run of the project's tests."""
    provided = output.strip()
    if provided:
        project = await projects.detect(ctx.runtime)
        return Summarized(project.name, provided, None)
    job, commands = await project_job(ctx, target, extra_args, "test")
    run = await commands.test(job)
    return Summarized(job.project.name, run.output, run)


def excerpt(text: str) -> str:
    # Runners print their failure summaries last, so the excerpt is the tail.
    return text if len(text) <= EXCERPT_CHARS else "[…]\n" + text[-EXCERPT_CHARS:]


# repo.test_failures_summary ---------------------------------------------------------------------


class FailuresSummaryArgs(Arguments):
    output: Annotated[str, Field(description="Test output to summarize (else run tests)")] = ""
    target: Target = ""
    extra_args: ExtraArgs = []
    max_failures: Annotated[int, bounded(1, 200, "Default 30")] = 30
    max_diagnostics: Annotated[int, bounded(1, 200, "Default 30")] = 30


class FailuresSummaryOutput(Output):
    """`failed_count` counts every failure found (at most `max_failures`), also those
    `failed_tests` leaves out to stay within the output limit."""

    project_type: str
    source: str
    command: list[str]
    exit_code: int
    failed_count: int
    failed_tests: list[FailedTest]
    diagnostics: list[str]
    output_excerpt: str
    summary: str
    output: str


@tool(
    **repo_metadata(
        "repo.test_failures_summary",
        "Summarize failed tests from provided test output or by executing repository tests.",
        risk=RiskLevel.LOW,
        side_effects=SideEffects.REVERSIBLE,
        idempotency=Idempotency.BEST_EFFORT,
        timeout=180,
        output_kb=1024,
        cost=CostHint.MEDIUM,
        arg_fields=[extra_args_policy("test")],
        examples=[
            {"output": "--- FAIL: TestCreateTodo (0.00s)\nFAIL\tgithub.com/acme/todo\t0.01s"},
            {"target": "./...", "max_failures": 20},
        ],
    )
)
async def summarize_test_failures(
    ctx: ToolContext, args: FailuresSummaryArgs
) -> ToolResult[FailuresSummaryOutput]:
    found = await summarized(ctx, args.output, args.target, args.extra_args)
    failures = [
        FailedTest(**failure)
        for failure in toolchain_output.failed_tests(found.text, args.max_failures)
    ]
    diagnostics = toolchain_output.diagnostics(found.text, args.max_diagnostics, ctx.workspace)
    names = ", ".join(failure.name for failure in failures[:5])
    summary = f"identified {len(failures)} failing tests" + (f": {names}" if names else "")
    output = FailuresSummaryOutput(
        project_type=found.project_type,
        source=found.source,
        command=found.command,
        exit_code=found.exit_code,
        failed_count=len(failures),
        failed_tests=[],
        diagnostics=[],
        output_excerpt=excerpt(found.text),
        summary=summary,
        output=summary,
    )
    room = room_left(output, ctx.output_limit)
    output.failed_tests = leading(failures, room // 2)
    output.diagnostics = leading(diagnostics, room - size(output.failed_tests))
    return ToolResult(output=output, logs=found.logs, exit_code=found.exit_code)


# repo.stacktrace_summary ------------------------------------------------------------------------


class StacktraceSummaryArgs(Arguments):
    output: Annotated[str, Field(description="Output to summarize (else run tests)")] = ""
    target: Target = ""
    extra_args: ExtraArgs = []
    max_traces: Annotated[int, bounded(1, 50, "Default 10")] = 10
    max_frames: Annotated[int, bounded(1, 80, "Default 20")] = 20


class Stacktrace(Output):
    type: Annotated[
        str,
        Field(
            description="python_traceback, panic, fatal_error, rust_panic, java_exception or "
            "javascript_error"
        ),
    ]
    message: str
    frames: Annotated[list[str], Field(description="The leading max_frames frames")]
    frame_count: Annotated[int, Field(description="How many frames the trace has")]
    exception: Annotated[
        str, Field(description="The exception's name (only when the trace names one)")
    ] = ""


class StacktraceSummaryOutput(Output):
    """`trace_count` counts every trace found (at most `max_traces`), also those `stacktraces`
    leaves out to stay within the output limit."""

    project_type: str
    source: str
    command: list[str]
    exit_code: int
    trace_count: int
    stacktraces: list[Stacktrace]
    diagnostics: list[str]
    summary: str
    output: str


@tool(
    **repo_metadata(
        "repo.stacktrace_summary",
        "Summarize stacktraces from provided output or by executing repository tests (Python "
        "tracebacks, Go panics, Rust panics, Java exceptions, JavaScript errors).",
        risk=RiskLevel.LOW,
        side_effects=SideEffects.REVERSIBLE,
        idempotency=Idempotency.BEST_EFFORT,
        timeout=180,
        output_kb=1024,
        cost=CostHint.MEDIUM,
        arg_fields=[extra_args_policy("test")],
        examples=[
            {
                "output": "panic: runtime error\n\ngoroutine 1 [running]:\nmain.main()\n"
                "\t/w/main.go:11"
            },
            {"target": "./...", "max_traces": 5, "max_frames": 12},
        ],
    )
)
async def summarize_stacktraces(
    ctx: ToolContext, args: StacktraceSummaryArgs
) -> ToolResult[StacktraceSummaryOutput]:
    found = await summarized(ctx, args.output, args.target, args.extra_args)
    traces = [
        Stacktrace(**trace)
        for trace in toolchain_output.stacktraces(found.text, args.max_traces, args.max_frames)
    ]
    diagnostics = toolchain_output.diagnostics(found.text, STACKTRACE_DIAGNOSTICS, ctx.workspace)
    kinds = ", ".join(sorted({trace.type for trace in traces}))
    summary = f"identified {len(traces)} stacktraces" + (f" ({kinds})" if kinds else "")
    output = StacktraceSummaryOutput(
        project_type=found.project_type,
        source=found.source,
        command=found.command,
        exit_code=found.exit_code,
        trace_count=len(traces),
        stacktraces=[],
        diagnostics=[],
        summary=summary,
        output=summary,
    )
    room = room_left(output, ctx.output_limit)
    output.diagnostics = leading(diagnostics, room // 4)
    output.stacktraces = leading(traces, room - size(output.diagnostics))
    return ToolResult(output=output, logs=found.logs, exit_code=found.exit_code)


TOOLS: list[Tool] = [summarize_test_failures, summarize_stacktraces]
