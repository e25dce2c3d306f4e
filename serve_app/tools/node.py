"""node.* — npm scripts and installs (contract §4.2), and the Node commands behind repo.* (§4.3).

npm runs with its update notifier, funding and audit calls switched off: a tool call does not
reach the registry unless it installs.
"""

from __future__ import annotations

from typing import Any

from serve_app.domain.capability import (
    Capability,
    PathField,
)
from serve_app.domain.errors import invalid_argument
from serve_app.tools import projects
from serve_app.tools.base import Tool, ToolContext, ToolResult
from serve_app.tools.languages import (
    DIST_DIR,
    MAX_FAILED_TESTS,
    Command,
    Completed,
    Coverage,
    FlagRules,
    Job,
    Packaged,
    ProjectCommands,
    language_result,
    language_tool,
    output_dir,
    relative_arg,
    run_toolchain,
    target_path,
)

ENV = {
    "npm_config_update_notifier": "false",
    "npm_config_fund": "false",
    "npm_config_audit": "false",
}
# Only npm's own switches: anything for the script itself goes through `target`.
BUILD_FLAGS = FlagRules(exact=frozenset({"--silent", "--if-present"}))
TEST_FLAGS = FlagRules(exact=frozenset({"--silent"}))


def npm(*args: str) -> Command:
    return Command(["npm", *args], "node", ENV)


async def script_args(ctx: ToolContext, value: str | None) -> list[str]:
    """`-- ./target` for a script run: the target is a workspace path handed to the script."""
    path = await target_path(ctx, value)
    return ["--", relative_arg(path)] if path is not None else []


async def entry_file(job: Job) -> str:
    """What `node --check` validates: the target, else package.json `main`, else index.js."""
    path = await target_path(job.ctx, job.target)
    if path is not None:
        return relative_arg(path)
    main = (await projects.package_json(job.ctx.runtime)).get("main")
    for candidate in (main, "index.js"):
        if not isinstance(candidate, str) or not candidate:
            continue
        path = await job.ctx.path(candidate)
        info = await job.ctx.runtime.stat(path)
        if info is not None and info.kind == "file":
            return relative_arg(path)
    raise invalid_argument("no JavaScript entry file to validate (package.json main, index.js)")


# repo.* commands --------------------------------------------------------------------------------


async def _build(job: Job) -> Completed:
    extra = [arg for arg in job.extra_args if arg != "--if-present"]
    command = npm("run", "build", "--if-present", *extra, *await script_args(job.ctx, job.target))
    return await job.run(command)


async def _test(job: Job) -> Completed:
    return await job.run(npm("test", *job.extra_args, *await script_args(job.ctx, job.target)))


async def _validate(job: Job) -> Completed:
    if job.project.flavor == "typescript":
        return await job.run(npm("run", "typecheck", "--if-present"))
    return await job.run(Command(["node", "--check", await entry_file(job)], "node"))


async def _lint(job: Job) -> Completed:
    args = await script_args(job.ctx, job.target)
    return await job.run(npm("run", "lint", "--if-present", *args))


async def _coverage(job: Job) -> Coverage:
    # Coverage belongs to the project's own test script (c8, jest --coverage): not normalized.
    return Coverage(await _test(job), supported=False)


def packed_tarball(output: str) -> str:
    """The file `npm pack` reports (its last `*.tgz` line)."""
    lines = [line.strip() for line in output.splitlines() if line.strip().endswith(".tgz")]
    return lines[-1].rsplit(" ", 1)[-1] if lines else ""


async def _package(job: Job) -> Packaged:
    dist = await output_dir(job.ctx, DIST_DIR)
    run = await job.run(npm("pack", "--pack-destination", dist.relative))
    tarball = packed_tarball(run.output)
    return Packaged(run, f"{dist.relative}/{tarball}" if tarball else dist.relative)


COMMANDS = ProjectCommands(
    build_flags=BUILD_FLAGS,
    test_flags=TEST_FLAGS,
    build=_build,
    test=_test,
    validate=_validate,
    static_analysis=_lint,
    coverage=_coverage,
    package=_package,
)


# node.* tools -----------------------------------------------------------------------------------

_TARGET = {"type": "string", "description": "Workspace path handed to the script after --"}


def _node_tool(name: str, description: str, timeout: int, **fields: Any) -> Capability:
    return language_tool(
        name,
        description,
        timeout=timeout,
        output_kb=2048,
        outputs=fields.pop("outputs", None),
        **fields,
    )


INSTALL = _node_tool(
    "node.install",
    "Install Node dependencies using npm ci/install.",
    300,
    network=True,
    properties={
        "use_ci": {"type": "boolean", "description": "npm ci (default true) or npm install"},
        "ignore_scripts": {"type": "boolean", "description": "--ignore-scripts (default true)"},
    },
    examples=[{"use_ci": True, "ignore_scripts": True}],
)


async def _install(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    argv = ["ci"] if args.get("use_ci", True) else ["install"]
    if args.get("ignore_scripts", True):
        argv.append("--ignore-scripts")
    run = await run_toolchain(ctx, npm(*argv), output_kb=2048)
    output = language_result(run, ctx.workspace)
    return ToolResult(output=output, logs=run.logs, exit_code=run.exit_code)


def _script_tool(script: str, name: str, description: str, timeout: int) -> Tool:
    outputs = (
        {"failed_tests": {"type": "array"}, "failed_count": {"type": "integer"}}
        if script == "test"
        else {}
    )
    capability = _node_tool(
        name,
        f"{description} Runs `npm run {script} --if-present [-- target]`.",
        timeout,
        properties={"target": _TARGET},
        outputs=outputs,
        path_fields=[PathField(field="target")],
        examples=[{}],
    )

    async def handler(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
        target = await script_args(ctx, args.get("target"))
        command = npm("run", script, "--if-present", *target)
        run = await run_toolchain(ctx, command, output_kb=2048)
        extra: dict[str, Any] = {}
        if script == "test":
            failures = projects.failed_tests(run.output, MAX_FAILED_TESTS)
            extra = {"failed_tests": failures, "failed_count": len(failures)}
        output = language_result(run, ctx.workspace, extra=extra)
        return ToolResult(output=output, logs=run.logs, exit_code=run.exit_code)

    return Tool(capability, handler)


TOOLS: list[Tool] = [
    Tool(INSTALL, _install),
    _script_tool("build", "node.build", "Run Node/TypeScript build script with npm.", 300),
    _script_tool("test", "node.test", "Run Node test script with npm.", 300),
    _script_tool("lint", "node.lint", "Run Node lint script with npm.", 240),
    _script_tool("typecheck", "node.typecheck", "Run TypeScript typecheck script with npm.", 240),
]
